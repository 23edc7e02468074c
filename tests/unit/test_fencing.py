"""Fencing decisions (pure): when a host may be evacuated, which state a
host gets when it answers or misses polls, the fence-agents protocol
(stdin, exit codes, "Status: OFF"), secrets masked and scrubbed."""
import pytest

from agent.common.errors import InvalidInput
from agent.controller import fencing, states

UP = {"name": "h1", "state": "up", "forced_down": False, "enabled": True,
      "fenced_at": None, "last_seen": "2026-12-01T07:00:00Z",
      "down_reason": None, "fence_error": None}


# -- may_evacuate: trusted off only on a word that means off ------------------

@pytest.mark.parametrize("host, allowed", [
    (dict(UP, state="fenced", fenced_at="2026-12-01T07:01:00Z"), True),
    (dict(UP, state="down", forced_down=True), True),
    (dict(UP, state="fenced", forced_down=True), True),
    (UP, False),
    (dict(UP, state="down"), False),            # unreachable is not off
    (dict(UP, state="down", last_seen=None), False),
    (dict(UP, forced_down=True), False),        # never both, by the store
])
def test_may_evacuate_only_a_host_known_to_be_off(host, allowed):
    ok, reason = fencing.may_evacuate(host)
    assert ok is allowed
    assert "h1" in reason and len(reason.splitlines()) == 1


def test_a_down_host_is_refused_naming_the_way_out():
    ok, reason = fencing.may_evacuate(dict(UP, state="down"))
    assert not ok
    assert "not fenced" in reason and "drover host fence h1" in reason
    assert "host set --down h1" in reason


@pytest.mark.parametrize("state, forced, seen, missed", [
    ("up", False, "up", "down"),
    ("down", False, "up", "down"),
    ("fenced", False, "fenced", "fenced"),
    ("fenced", True, "fenced", "fenced"),
    ("down", True, "down", "down"),
    ("up", True, "down", "down"),
])
def test_fenced_is_sticky_and_set_down_stays_down(state, forced, seen,
                                                  missed):
    host = dict(UP, state=state, forced_down=forced)
    assert fencing.state_when_seen(host) == seen
    assert fencing.state_when_missed(host) == missed


# -- host set --up: refused while evacuations from the host are unfinished ---

def _mig(status, source="h1", type="evacuation", id=7):
    return {"id": id, "type": type, "source_host": source, "status": status}


@pytest.mark.parametrize("migrations, refused", [
    ([], False),
    ([_mig("completed"), _mig("failed")], False),
    ([_mig("accepted")], True),
    ([_mig("running")], True),
    ([_mig("done")], True),        # rebuilt elsewhere, host not cleaned yet
    ([_mig("error")], True),
    ([_mig("running", source="h2")], False),
    ([_mig("running", type="live-migration")], False),
])
def test_clearing_is_refused_while_evacuations_are_unfinished(migrations,
                                                              refused):
    why = fencing.clear_refusal(UP, migrations)
    assert (why is not None) is refused
    if refused:
        assert "evacuation" in why and "7" in why


# -- the stdin protocol -------------------------------------------------------

def test_stdin_has_one_option_per_line_then_the_action():
    text = fencing.stdin_for({"plug": "h1", "ip": "198.18.0.2",
                              "password": "pa ss=word"}, "off")
    assert text == ("ip=198.18.0.2\npassword=pa ss=word\nplug=h1\n"
                    "action=off\n")


@pytest.mark.parametrize("code, output, said", [
    (0, "Status: ON\n", fencing.ON),
    (2, "Status: OFF\n", fencing.OFF),
    (2, "", fencing.OFF),                          # exit 2 is off
    (0, "Status: OFF\n", fencing.OFF),
    (0, "2026-12-01 INFO x\nStatus: OFF", fencing.OFF),
    (0, "status: off", fencing.OFF),
    (0, "", None),                                 # says nothing clear
    (1, "Status: OFF\n", None),                    # an error is not off
    (1, "Failed: Unable to connect", None),
    (2, "Status: ON\n", fencing.ON),               # never off then
    (0, "Status: ON\nStatus: OFF\n", None),
    (124, "", None),
])
def test_status_is_off_only_when_nothing_contradicts_it(code, output, said):
    assert fencing.status_from(code, output) == said


def test_reason_is_the_failed_line_with_secrets_scrubbed():
    out = ("2026-12-01 07:27:04,281 ERROR: Failed: Unable to connect with "
           "password hunter2\n2026-12-01 ERROR: Please use '-h' for usage\n")
    reason = fencing.reason_from(out, {"password": "hunter2"}, 1)
    assert reason == "Failed: Unable to connect with password ***"
    assert fencing.reason_from("", {}, 1) == "exit 1"
    assert fencing.reason_from("a\nlast line\n", {}) == "last line"


# -- secrets ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["password", "passwd", "password_script",
                                 "passwd_script", "snmp_priv_passwd",
                                 "PASSWORD", "secret_key", "api_token",
                                 "ssh_private_key_passphrase"])
def test_secret_options_are_masked(key):
    assert fencing.is_secret(key)
    shown = fencing.masked({key: "hunter2", "ip": "198.18.0.2"})
    assert shown == {key: "***", "ip": "198.18.0.2"}
    assert "hunter2" not in fencing.scrub("x hunter2 y", {key: "hunter2"})


@pytest.mark.parametrize("key", ["ip", "username", "plug", "lab_dir",
                                 "identity_file", "ipport", "ssl_insecure"])
def test_other_options_are_shown(key):
    assert not fencing.is_secret(key)


# -- what the operator may give -----------------------------------------------

@pytest.mark.parametrize("agent", ["fence_ipmilan", "fence_virsh",
                                   "/usr/local/bin/fence_drover_lab"])
def test_agents_are_names_or_absolute_paths(agent):
    assert fencing.check_agent(agent) == agent


@pytest.mark.parametrize("agent", ["", "../fence_x", "bin/fence_x",
                                   "fence_x; reboot", "-o", None, 7,
                                   "/bin/x\n"])
def test_other_agents_are_refused(agent):
    with pytest.raises(InvalidInput):
        fencing.check_agent(agent)


def test_options_are_one_line_values_and_errors_never_show_them():
    assert fencing.check_options({"ipport": 623, "lanplus": True,
                                  "plug": "h1"}) == {
        "ipport": "623", "lanplus": "1", "plug": "h1"}
    for bad in ({"password": "a\naction=on"}, {"password": "x\r"},
                {"password": ["hunter2"]}):
        with pytest.raises(InvalidInput) as err:
            fencing.check_options(bad)
        assert "password" in str(err.value)
        assert "hunter2" not in str(err.value) and "action=on" not in \
            str(err.value)
    for key in ("action", "a b", "x=y", "-o", ""):
        with pytest.raises(InvalidInput):
            fencing.check_options({key: "1"})


# -- what operators see -------------------------------------------------------

def test_the_shown_reason_says_why_a_host_is_not_in_service():
    assert fencing.shown_reason(UP) is None
    fenced = dict(UP, state="fenced", fenced_at="2026-12-01T07:01:00Z",
                  last_seen="2026-12-01T07:00:00Z")
    assert fencing.shown_reason(fenced) == "fenced at 2026-12-01T07:01:00Z"
    back = dict(fenced, last_seen="2026-12-01T07:05:00Z")
    assert "answers again" in fencing.shown_reason(back)
    assert fencing.shown_reason(dict(UP, state="down", forced_down=True)) \
        == "set down by the operator"
    failed = dict(UP, state="down", down_reason="cannot connect",
                  fence_error="fence_x: action=off failed (exit 1): Failed")
    assert fencing.shown_reason(failed) == (
        "fence failed: fence_x: action=off failed (exit 1): Failed; "
        "cannot connect")
    assert fencing.shown_reason(dict(UP, enabled=False,
                                     disabled_reason="maintenance")) == \
        "disabled: maintenance"


@pytest.mark.parametrize("host, status", [
    (dict(UP, state="fenced"), "DOWN"),
    (dict(UP, state="down", forced_down=True), "DOWN"),
    (dict(UP, state="down", forced_down=True, last_seen=None), "DOWN"),
    (dict(UP, state="fenced", enabled=False), "DOWN"),
])
def test_host_status_of_fenced_and_forced_down_hosts(host, status):
    assert states.host_status("h1", host) == status
