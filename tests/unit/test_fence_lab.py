"""fence_drover_lab: the ClusterLabs protocol (options on stdin, exit
codes), with the lab itself replaced by a fake."""
import io

import pytest

from agent.common.errors import InvalidInput
from agent.lab import fence_lab


class FakeLab:
    def __init__(self, states):
        self.states = dict(states)
        self.calls = []

    def status(self):
        return [{"name": n, "state": s} for n, s in self.states.items()]

    def host_stop(self, plug):
        self.calls.append(("stop", plug))
        self.states[self._name(plug)] = "stopped"

    def host_start(self, plug):
        self.calls.append(("start", plug))
        self.states[self._name(plug)] = "up"

    def _name(self, plug):
        if plug not in self.states:
            raise InvalidInput(f"no lab host {plug!r}")
        return plug

    class plan:
        name = "lab"

        @staticmethod
        def resolve(plug):
            class H:
                name = plug
            if not plug.startswith("lab-h"):
                raise InvalidInput(f"no lab host {plug!r} (use h1)")
            return H


@pytest.fixture
def lab(monkeypatch):
    fake = FakeLab({"lab-h1": "up", "lab-h2": "stopped"})
    seen = []
    monkeypatch.setattr(fence_lab, "_lab",
                        lambda d: seen.append(d) or fake)
    fake.dirs = seen
    return fake


def run(stdin, capsys, argv=()):
    rc = fence_lab.main(list(argv), stdin=io.StringIO(stdin))
    out, err = capsys.readouterr()
    return rc, out, err


def test_stdin_lines_with_comments_and_aliases():
    assert fence_lab.parse_stdin(
        "# fenced by drover\n\naction=off\nport=lab-h1\n"
        "lab_dir = /var/lib/lab \n") == {
            "action": "off", "plug": "lab-h1", "lab_dir": "/var/lib/lab"}
    assert fence_lab.parse_stdin("option=status\n")["action"] == "status"


def test_arguments_like_fence_agents():
    assert fence_lab.parse_args(["-o", "status", "-n", "lab-h1",
                                 "--lab-dir=/x"]) == {
        "action": "status", "plug": "lab-h1", "lab_dir": "/x"}
    assert fence_lab.parse_args(["--action", "off", "--plug", "h2"]) == {
        "action": "off", "plug": "h2"}


def test_off_powers_the_host_off(lab, capsys):
    rc, _, err = run("action=off\nplug=lab-h1\nlab_dir=/l\n", capsys)
    assert (rc, err) == (0, "")
    assert lab.calls == [("stop", "lab-h1")]
    assert lab.dirs == ["/l"]


def test_status_on_is_0_and_off_is_2(lab, capsys):
    assert run("action=status\nplug=lab-h1\n", capsys)[:2] == \
        (0, "Status: ON\n")
    assert run("action=status\nplug=lab-h2\n", capsys)[:2] == \
        (2, "Status: OFF\n")


def test_on_and_reboot(lab, capsys):
    assert run("action=on\nplug=lab-h2\n", capsys)[0] == 0
    assert run("action=reboot\nplug=lab-h1\n", capsys)[0] == 0
    assert lab.calls == [("start", "lab-h2"), ("stop", "lab-h1"),
                         ("start", "lab-h1")]


def test_monitor_list_and_metadata(lab, capsys):
    assert run("action=monitor\n", capsys)[0] == 0
    assert run("action=list\n", capsys)[1] == "lab-h1,\nlab-h2,\n"
    rc, out, _ = run("action=metadata\n", capsys)
    assert rc == 0
    assert '<resource-agent name="fence_drover_lab"' in out
    assert '<parameter name="plug"' in out


@pytest.mark.parametrize("stdin, words", [
    ("action=explode\nplug=lab-h1\n", "unknown action 'explode'"),
    ("action=off\n", "needs plug"),
    ("action=status\nplug=lab-h9\n", "no host lab-h9"),
    ("action=off\nplug=bogus\n", "no lab host 'bogus'"),
    ("garbage\n", "not a key=value line"),
])
def test_errors_exit_1_with_one_line(lab, capsys, stdin, words):
    rc, out, err = run(stdin, capsys)
    assert rc == 1
    assert words in err
    assert err.count("\n") == 1 and err.startswith("fence_drover_lab: ")
    assert lab.calls == []


def test_an_unexpected_failure_is_one_line_too(monkeypatch, capsys):
    def boom(_dir):
        raise RuntimeError("processes would not die: [1]")
    monkeypatch.setattr(fence_lab, "_lab", boom)
    rc, _, err = run("action=off\nplug=lab-h1\n", capsys)
    assert rc == 1
    assert err == "fence_drover_lab: RuntimeError: processes would not " \
        "die: [1]\n"
