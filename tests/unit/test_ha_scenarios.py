"""Automatic recovery on the simulated fleet, in simulated time: each
scenario a script of events, then what the operator would check (where
each guest runs, its status, the host's state and events, the instance
events).  Every scenario is also watched at every agent call for the two
promises (a guest never runs on two hosts, no only copy of a disk lost)
and judged at the end (the database matches the fleet):
``lab.problems() == []``.

Defaults: [ha] lease_time 10 s, startup_grace 60 s, fence_retry_interval
10 s, max_restart 1, max_relocate 1; polls every 2 s; hosts h1, h2, h3,
each with a working fence agent unless a scenario says otherwise.
"""
import pytest

from agent.conf import CONF
from ha_sim_helpers import HALab


@pytest.fixture
def lab(tmp_path):
    lab = HALab(tmp_path)
    yield lab
    lab.close()


def ha_and_plain(lab):
    lab.boot_ha("ha1")
    lab.boot("plain", host="h1", storage="shared")


def assert_recovered(lab, name, failed="h1"):
    host, status = lab.where(name)
    assert host != failed and status == "ACTIVE"
    assert lab.running_on(name) == [host]


# -- power loss ---------------------------------------------------------------

def test_power_loss_ha_guest_evacuated_plain_untouched(lab):
    ha_and_plain(lab)
    lab.fleet.power_off("h1")
    lab.advance(30)
    assert_recovered(lab, "ha1")
    assert lab.where("plain")[0] == "h1"          # left for the operator
    assert lab.store.get_host("h1")["state"] == "fenced"
    assert [e for e, _ in lab.host_events("h1")] == \
        ["failed", "fenced", "recovered"]
    assert "not HA, left untouched: plain" in lab.host_event_text("h1")
    assert lab.events("ha1", "ha-recover") == [
        ("recover_host_detect", "Success"), ("recover_host_fence", "Success"),
        ("recover_host_evacuate", "Success")]
    assert "ha-recover" not in lab.actions("plain")
    assert lab.problems() == []


def test_nothing_before_lease_time(lab):
    ha_and_plain(lab)
    lab.fleet.power_off("h1")
    lab.advance(8)
    assert lab.where("ha1")[0] == "h1"
    assert lab.recoveries() == []


def test_a_host_without_ha_instances_is_only_reported(lab):
    lab.boot("plain", host="h1", storage="shared")
    lab.fleet.power_off("h1")
    lab.advance(40)
    assert lab.recoveries() == []
    assert lab.where("plain")[0] == "h1"
    assert lab.store.get_host("h1")["state"] == "down"     # not fenced
    assert lab.host_events("h1") == [("no_recovery", "Info")]
    assert lab.problems() == []


def test_the_returning_host_is_reconciled_and_runs_nothing_twice(lab):
    ha_and_plain(lab)
    lab.fleet.power_off("h1")
    lab.advance(30)
    lab.fleet.power_on("h1")
    lab.advance(10)
    assert_recovered(lab, "ha1")
    assert lab.store.get_host("h1")["state"] == "up"
    assert lab.problems() == []


def test_local_disk_ha_guest_left_behind_with_the_reason(lab):
    lab.boot_ha("ha1", storage="local")
    lab.boot_ha("ha2")
    lab.fleet.power_off("h1")
    lab.advance(30)
    assert lab.where("ha1")[0] == "h1"
    assert_recovered(lab, "ha2")
    assert "local storage" in lab.host_event_text("h1")
    assert lab.problems() == []


# -- fencing ------------------------------------------------------------------

def test_link_cut_fence_powers_the_host_off_then_evacuates(lab):
    """The host still runs its guests behind the cut: the fence agent
    powers it off first, so the guest never runs twice (the watch)."""
    ha_and_plain(lab)
    lab.fleet.cut("h1")
    lab.advance(30)
    assert_recovered(lab, "ha1")
    assert lab.problems() == []


def test_fence_agent_failing_nothing_evacuated_reason_shown_retried(lab):
    ha_and_plain(lab)
    lab.set_fence_agent("h1", "failing")
    lab.fleet.cut("h1")
    lab.later(60, lambda: lab.fleet.restore("h1"))
    lab.advance(20)
    # The host came back while the fence kept failing: nothing moved.
    assert lab.where("ha1")[0] == "h1"
    assert lab.running_on("ha1") == ["h1"]
    fence_events = [e for e in lab.store.list_host_events("h1")
                    if e["event"] == "fence"]
    assert fence_events and all(e["result"] == "Error"
                                for e in fence_events)
    assert "Unable to connect" in fence_events[0]["details"]
    assert "abandoned" in [e for e, _ in lab.host_events("h1")]
    assert lab.recoveries("h1")[0]["state"] == "done"
    steps = lab.store.steps_get(lab.recoveries("h1")[0]["id"])
    assert steps[1]["data"]["abandoned"]
    assert lab.fleet.calls.count(("h1", "host.facts")) > 3    # retried
    assert lab.problems() == []


def test_fence_agent_failing_then_succeeding(lab):
    ha_and_plain(lab)
    lab.set_fence_agent("h1", "failing")
    lab.fleet.power_off("h1")
    lab.later(45, lambda: lab.set_fence_agent("h1", "ok"))
    lab.advance(20)
    assert_recovered(lab, "ha1")
    results = [r for e, r in lab.host_events("h1") if e == "fence"]
    assert results == ["Error"]                 # said once, retried
    assert ("fenced", "Success") in lab.host_events("h1")
    assert lab.store.get_host("h1")["fence_error"] is None
    assert lab.problems() == []


def test_no_fence_agent_no_lease_waits_for_the_operator(tmp_path):
    lab = HALab(tmp_path, leases=False)
    try:
        ha_and_plain(lab)
        lab.no_fence_agent("h1")
        lab.fleet.power_off("h1")
        lab.later(40, lambda: lab.store.set_host_forced_down("h1", True))
        lab.advance(14)
        text = lab.host_event_text("h1")
        assert "no fence agent and no self-fence lease" in text
        assert "no fence agent" in lab.store.get_host("h1")["fence_error"]
        assert_recovered(lab, "ha1")    # after the operator's set --down
        assert lab.problems() == []
    finally:
        lab.close()


@pytest.mark.parametrize("verdict", ["alive", "unknown", "wait"])
def test_self_fence_verdict_not_fenced_evacuates_nothing(lab, verdict):
    ha_and_plain(lab)
    lab.no_fence_agent("h1")
    lab.leases.set("h1", verdict, f"simulated: {verdict}")
    lab.fleet.cut("h1")
    lab.later(50, lambda: lab.fleet.restore("h1"))
    lab.advance(14)
    assert lab.where("ha1")[0] == "h1"
    assert lab.running_on("ha1") == ["h1"]
    assert f"not fenced ({verdict}" in lab.host_event_text("h1")
    assert "h1" in lab.leases.asked
    assert lab.problems() == []


def test_self_fence_verdict_fenced_evacuates(lab):
    ha_and_plain(lab)
    lab.no_fence_agent("h1")
    lab.fleet.cut("h1")

    def isolated():                 # the agent fenced itself
        lab.fleet.power_off("h1")
        lab.leases.set("h1", "fenced", "lease lapsed, peers agree")
    lab.later(14, isolated)
    lab.advance(40)
    assert_recovered(lab, "ha1")
    assert lab.store.get_host("h1")["state"] == "fenced"
    assert "self-fence lease lapsed" in lab.host_event_text("h1")
    assert lab.problems() == []


def test_self_fenced_host_only_its_acknowledged_ha_guests_move(lab):
    # ha2 became HA after h1's last acknowledged renewal: h1 did not
    # destroy it when it fenced itself, so it may still run there and is
    # not evacuated; ha1, acknowledged and destroyed, is.
    lab.boot_ha("ha1")
    lab.store.create_flavor("later", 1, 256, 1)
    lab.boot("ha2", host="h1", storage="shared", flavor="later")
    lab.no_fence_agent("h1")
    lab.leases.acked["h1"] = [lab.uuid("ha1")]
    lab.store.set_flavor_properties("later", {"ha": "true"})
    lab.fleet.cut("h1")

    def isolated():                 # the agent destroyed what it knew
        lab.fleet.world.hosts["h1"].domains[lab.uuid("ha1")].state = \
            "shutoff"
        lab.leases.set("h1", "fenced", "lease lapsed, peers agree")
    lab.later(14, isolated)
    lab.advance(40)
    assert_recovered(lab, "ha1")
    assert lab.where("ha2")[0] == "h1"
    assert lab.running_on("ha2") == ["h1"]
    assert lab.problems() == []


# -- policy -------------------------------------------------------------------

def test_flavor_property_makes_its_instances_ha(lab):
    lab.store.create_flavor("haflavor", 1, 256, 1, properties={"ha": "true"})
    lab.boot("vm1", host="h1", storage="shared", flavor="haflavor")
    lab.fleet.power_off("h1")
    lab.advance(30)
    assert_recovered(lab, "vm1")
    assert lab.problems() == []


def test_instance_ha_false_overrides_the_flavor(lab):
    lab.store.create_flavor("haflavor", 1, 256, 1, properties={"ha": "true"})
    lab.boot_ha("vm1", ha="false", flavor="haflavor")
    lab.fleet.power_off("h1")
    lab.advance(30)
    assert lab.where("vm1")[0] == "h1"
    assert lab.recoveries() == []


def test_fleet_default_ha(lab):
    CONF.set_override("default_ha", True, "ha")
    try:
        lab.boot("vm1", host="h1", storage="shared")
        lab.fleet.power_off("h1")
        lab.advance(30)
        assert_recovered(lab, "vm1")
    finally:
        CONF.clear_override("default_ha", "ha")


def test_ha_disabled_recovers_nothing(lab):
    CONF.set_override("enabled", False, "ha")
    try:
        ha_and_plain(lab)
        lab.fleet.power_off("h1")
        lab.advance(30)
        assert lab.where("ha1")[0] == "h1"
        assert lab.recoveries() == []
    finally:
        CONF.clear_override("enabled", "ha")


# -- capacity and priorities --------------------------------------------------

def test_capacity_short_higher_priority_first(tmp_path):
    lab = HALab(tmp_path, hosts=("h1", "h2"), memory_mb=2048)
    try:
        for k in range(4):
            lab.boot(f"filler{k}", host="h2", storage="shared")
        for name, prio in (("low", 1), ("top", 10), ("none", None),
                           ("mid", 5)):
            lab.boot_ha(name, priority=prio)
        lab.fleet.power_off("h1")
        lab.advance(30)
        # h2 has room for two of the four: the two highest priorities.
        assert lab.where("top")[0] == "h2" and lab.where("mid")[0] == "h2"
        assert lab.where("low")[0] == "h1" and lab.where("none")[0] == "h1"
        assert "2/4 HA instance(s) evacuated" in lab.host_event_text("h1")
        assert lab.problems() == []
    finally:
        lab.close()


# -- two hosts, a host failing during a recovery ------------------------------

def test_two_hosts_failing_at_once(tmp_path):
    lab = HALab(tmp_path, hosts=("h1", "h2", "h3", "h4"))
    try:
        lab.boot_ha("a", host="h1")
        lab.boot_ha("b", host="h2")
        lab.boot("plain", host="h2", storage="shared")
        lab.fleet.power_off("h1")
        lab.fleet.power_off("h2")
        lab.advance(40)
        for name in ("a", "b"):
            assert lab.where(name)[0] in ("h3", "h4")
            assert lab.where(name)[1] == "ACTIVE"
        assert lab.where("plain")[0] == "h2"
        assert len(lab.recoveries()) == 2
        assert lab.problems() == []
    finally:
        lab.close()


def test_destination_fails_during_the_recovery(lab):
    """h2 dies as the evacuation to it defines the guest: that
    evacuation fails, h2 is recovered in turn, and h1's HA guest is
    recovered again, to h3."""
    lab.boot_ha("ha1")
    lab.fleet.power_off("h1")
    lab.fleet.at_step("define", lambda f: f.power_off("h2"),
                      kind="evacuate")
    lab.advance(60)
    assert lab.where("ha1") == ("h3", "ACTIVE")
    assert lab.running_on("ha1") == ["h3"]
    assert lab.problems() == []


def test_host_returns_during_its_fence_wait(lab):
    """A host that answers again while its fence keeps failing is
    alive: the recovery ends, nothing moved; it fails again later and is
    recovered then."""
    lab.boot_ha("ha1")
    lab.set_fence_agent("h1", "failing")
    lab.fleet.cut("h1")
    lab.later(30, lambda: lab.fleet.restore("h1"))
    lab.advance(16)
    assert lab.running_on("ha1") == ["h1"]
    lab.set_fence_agent("h1", "ok")
    lab.fleet.power_off("h1")
    lab.advance(30)
    assert_recovered(lab, "ha1")
    assert [t["state"] for t in lab.recoveries("h1")] == ["done", "done"]
    assert lab.problems() == []


# -- the controller -----------------------------------------------------------

@pytest.mark.parametrize("step", ["detect", "fence", "evacuate", "done"])
def test_controller_restart_at_each_step_resumes(lab, step):
    ha_and_plain(lab)
    lab.run([("at_step", step, ("controller_crash",), "recover_host")])
    lab.fleet.power_off("h1")
    lab.advance(14)
    assert lab.fleet.pending_hooks() == 0            # it did crash there
    lab.restart_controller()                         # resumes the task
    lab.advance(10)
    assert_recovered(lab, "ha1")
    assert lab.where("plain")[0] == "h1"
    assert lab.recoveries("h1")[0]["state"] == "done"
    assert lab.problems() == []


def test_no_recovery_during_startup_grace(lab):
    ha_and_plain(lab)
    lab.restart_controller()
    lab.fleet.power_off("h1")
    lab.advance(50)                     # silent 50 s, within the grace
    assert lab.recoveries() == []
    assert lab.where("ha1")[0] == "h1"
    lab.advance(30)                     # the grace is over
    assert_recovered(lab, "ha1")
    assert lab.problems() == []


def test_controller_outage_alone_kills_and_moves_nothing(lab):
    ha_and_plain(lab)
    before = lab.domains()
    lab.fleet.clock.advance(120)        # no controller for 2 minutes
    lab.restart_controller()
    lab.advance(90)
    assert lab.domains() == before
    assert lab.recoveries() == []
    assert [s for _, s in lab.hosts()] == ["up", "up", "up"]
    assert lab.problems() == []


def test_a_blip_shorter_than_the_lease_moves_nothing(lab):
    ha_and_plain(lab)
    lab.fleet.cut("h1")
    lab.later(7, lambda: lab.fleet.restore("h1"))
    lab.advance(40)
    assert lab.running_on("ha1") == ["h1"]
    assert lab.recoveries() == []
    assert lab.problems() == []


def test_flapping_link_never_runs_a_guest_twice(lab):
    ha_and_plain(lab)
    for k in range(6):
        (lab.fleet.cut if k % 2 == 0 else lab.fleet.restore)("h1")
        lab.advance(6)
    lab.fleet.restore("h1")
    lab.advance(10)
    assert lab.recoveries() == []
    assert lab.running_on("ha1") == ["h1"]
    assert lab.problems() == []


# -- instance-level HA --------------------------------------------------------

def test_crashed_ha_guest_restarted_on_its_host(lab):
    ha_and_plain(lab)
    lab.crash_guest("ha1")
    lab.advance(4)
    assert lab.where("ha1") == ("h1", "ACTIVE")
    assert lab.running_on("ha1") == ["h1"]
    assert lab.actions("ha1")[-1] == "ha-restart"
    assert ("ha_restart_reason", "Success") in lab.events("ha1",
                                                          "ha-restart")
    assert lab.problems() == []


def test_crashed_again_past_max_restart_relocated(lab):
    lab.boot_ha("ha1")
    lab.crash_guest("ha1")
    lab.advance(4)
    lab.crash_guest("ha1", state="shutoff")
    lab.advance(4)
    host, status = lab.where("ha1")
    assert host != "h1" and status == "ACTIVE"
    assert lab.running_on("ha1") == [host]
    assert lab.actions("ha1")[-2:] == ["ha-restart", "ha-relocate"]
    assert lab.problems() == []


def test_past_max_relocate_left_in_error_with_the_reason(lab):
    lab.boot_ha("ha1")
    for _ in range(3):
        lab.crash_guest("ha1")
        lab.advance(4)
    inst = lab.store.get_instance("ha1")
    assert inst["status"] == "ERROR"
    assert "max_restart" in inst["error"]
    assert lab.actions("ha1")[-1] == "ha-give-up"
    assert lab.running_on("ha1") == []


def test_plain_guest_that_crashed_is_only_recorded_stopped(lab):
    ha_and_plain(lab)
    lab.crash_guest("plain", state="shutoff")
    lab.advance(4)
    assert lab.where("plain") == ("h1", "SHUTOFF")
    assert "ha-restart" not in lab.actions("plain")


def test_ha_guest_stopped_through_drover_stays_stopped(lab):
    lab.boot_ha("ha1")
    lab.op("stop", "ha1")
    lab.advance(20)
    assert lab.where("ha1") == ("h1", "SHUTOFF")
    assert lab.running_on("ha1") == []
    assert "ha-restart" not in lab.actions("ha1")


def test_operator_start_resets_the_count(lab):
    lab.boot_ha("ha1")
    lab.crash_guest("ha1")
    lab.advance(4)                      # restart 1/1
    lab.op("stop", "ha1")
    lab.op("start", "ha1")              # the operator's: counts anew
    lab.crash_guest("ha1")
    lab.advance(4)
    assert lab.where("ha1") == ("h1", "ACTIVE")
    assert lab.actions("ha1")[-1] == "ha-restart"
    assert lab.problems() == []


# -- what the operator sees ---------------------------------------------------

def test_ha_status_host_show_and_events_tell_what_happened(lab):
    from agent.controller.api import ha as ha_api
    from agent.controller.api import hosts as hosts_api
    ha_and_plain(lab)
    lab.set_fence_agent("h1", "failing")
    lab.fleet.power_off("h1")
    seen = []       # host show while the fence keeps failing
    lab.later(20, lambda: seen.append(hosts_api.host_show(lab.svc, "h1")))
    lab.later(25, lambda: lab.set_fence_agent("h1", "ok"))
    lab.advance(20)
    assert seen[0]["fence_state"].startswith("not fenced: ")
    assert "Unable to connect" in seen[0]["fence_state"]
    assert "running" in seen[0]["recovery"]
    assert "not fenced (attempt" in seen[0]["recovery"]
    shown = hosts_api.host_show(lab.svc, "h1")
    assert shown["fence_state"].startswith("fenced at")
    assert "done" in shown["recovery"]
    events = ha_api.host_events(lab.svc, "h1")
    assert [e["Event"] for e in events] == ["failed", "fence", "fenced",
                                           "recovered"]
    status = ha_api.ha_status(lab.svc)
    assert [(r["Name"], r["Status"], r["Host"] != "h1") for r in status] \
        == [("ha1", "ACTIVE", True)]
    assert status[0]["Last Recovery"].startswith("ha-recover at")
    lab.crash_guest("ha1")
    lab.advance(4)
    status = ha_api.ha_status(lab.svc)
    assert status[0]["Restarts"] == 1
    assert "crashed on" in status[0]["Reason"]


def test_restart_during_the_fence_wait_after_the_host_came_back(lab):
    """The controller dies while the fence keeps failing; the host comes
    back during the outage; the resumed recovery finds it alive and
    fences nothing (a controller outage never kills a guest)."""
    ha_and_plain(lab)
    lab.set_fence_agent("h1", "failing")
    lab.run([("at_step", "fence", ("controller_crash",), "recover_host")])
    lab.fleet.cut("h1")
    lab.advance(14)
    assert lab.fleet.pending_hooks() == 0
    lab.fleet.restore("h1")
    lab.set_fence_agent("h1", "ok")     # a fence now would power it off
    lab.restart_controller()
    lab.advance(4)
    assert lab.running_on("ha1") == ["h1"]
    assert lab.fleet.host("h1").powered
    assert "abandoned" in [e for e, _ in lab.host_events("h1")]
    assert lab.problems() == []
