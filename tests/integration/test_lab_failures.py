"""Lab verbs for failures on real lab hosts: power a host off and on
(``lab host stop/start``), cut and restore its network (``lab link``),
and the lab fence agent driving the same through the fence-agents
protocol."""
import contextlib
import io
import json
import os
import subprocess
import sys

import libvirt
import pytest

from agent.cli import main as cli
from test_lab import all_pids, leftovers

pytestmark = pytest.mark.integration

FENCE_AGENT = os.path.join(os.path.dirname(sys.executable),
                           "fence_drover_lab")
# A real QEMU with no disk: enough to see a guest die with its host.
GUEST = ("<domain type='qemu'><name>{name}</name><memory unit='MiB'>64"
         "</memory><os><type arch='x86_64'>hvm</type></os>"
         "<features><acpi/></features></domain>")


def _lab_cli(the_lab, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["lab", *args[:-1], "--lab-dir", the_lab.lab_dir,
                       "--name", the_lab.plan.name,
                       "--network", str(the_lab.plan.network), args[-1],
                       "-f", "json"])
    return rc, out.getvalue(), err.getvalue()


def _row(the_lab, name):
    return next(r for r in the_lab.status() if r["name"] == name)


def _pings(the_lab, from_host, address, count=1):
    """``address`` answers one of ``count`` pings (1 s apart) from
    ``from_host``."""
    return subprocess.run(
        the_lab.host_argv(from_host, ["ping", "-c", str(count), "-W", "1",
                                      "-i", "1", address]),
        capture_output=True).returncode == 0


def _start_guest(row, name):
    conn = libvirt.open(row["libvirt_uri"])
    try:
        conn.defineXML(GUEST.format(name=name)).create()
        return _qemu_pid(row, name)
    finally:
        conn.close()


def _qemu_pid(row, name):
    """PID (root namespace) of the QEMU of domain ``name`` on ``row``."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"qemu-system-x86_64") and \
                f"guest={name},".encode() in b" ".join(argv) and \
                os.stat(f"/proc/{entry}/ns/net").st_ino == \
                os.stat(f"/proc/{row['keeper_pid']}/ns/net").st_ino:
            return int(entry)
    raise AssertionError(f"no QEMU of {name} on {row['name']}")


def _domain_state(row, name):
    conn = libvirt.open(row["libvirt_uri"])
    try:
        return conn.lookupByName(name).isActive()
    finally:
        conn.close()


def test_host_stop_kills_everything_and_start_brings_it_back(lab_factory):
    own = lab_factory(2)
    h1, h2 = (r["name"] for r in own.status())
    before = _row(own, h1)
    own.start_daemon(h1, "agent", ["sleep", "600"])
    qemu = _start_guest(before, "lf-guest")
    marker = os.path.join(before["local_storage_dir"], "instances", "kept")
    own.host_exec(h1, ["sh", "-c", "echo data > "
                       "/var/lib/drover/instances/kept"])
    with open(own.files.host_key(own.plan.resolve(h1)) + ".pub") as f:
        host_key = f.read()
    pids = [d["pid"] for d in json.load(open(os.path.join(
        own.lab_dir, "state.json")))["daemons"] if d["host"] == 1]

    rc, out, err = _lab_cli(own, "host", "stop", h1)
    assert (rc, err) == (0, "")
    assert json.loads(out)["state"] == "stopped"
    for pid in [before["keeper_pid"], qemu, *pids]:
        assert not os.path.exists(f"/proc/{pid}"), pid
    assert not _pings(own, h2, before["address"])   # powered off
    assert open(marker).read() == "data\n"          # its disk kept
    assert own.host_stop(h1)["state"] == "stopped"  # idempotent
    assert {r["name"]: r["state"] for r in own.status()} == {
        h1: "stopped", h2: "up"}

    rc, out, err = _lab_cli(own, "host", "start", h1)
    assert (rc, err) == (0, "")
    after = _row(own, h1)
    assert after["state"] == "up"
    assert after["daemons"] == {"virtlogd": "up", "virtlockd": "up",
                                "libvirtd": "up", "sshd": "up",
                                "agent": "up"}
    assert after["keeper_pid"] != before["keeper_pid"]
    for key in ("address", "host_uuid", "libvirt_uri", "netns"):
        assert after[key] == before[key]
    conn = libvirt.open(after["libvirt_uri"])
    try:
        assert conn.getHostname() == h1
        assert f"<uuid>{before['host_uuid']}</uuid>" in \
            conn.getCapabilities()
    finally:
        conn.close()
    assert _domain_state(after, "lf-guest") == 0    # defined, not running
    assert own.host_exec(h1, ["cat", "/var/lib/drover/instances/kept"]) \
        == "data\n"
    assert open(own.files.host_key(own.plan.resolve(h1)) + ".pub").read() \
        == host_key
    # Same host key: the other host's strict known_hosts still accepts it.
    assert own.host_exec(h2, ["ssh", "-o", "BatchMode=yes",
                              "-o", "StrictHostKeyChecking=yes",
                              f"root@{h1}", "hostname"]).strip() == h1
    assert own.host_start(h1)["keeper_pid"] == after["keeper_pid"]


def test_link_down_cuts_the_network_and_processes_keep_running(
        lab_factory):
    own = lab_factory(2)
    h1, h2 = (r["name"] for r in own.status())
    before = _row(own, h1)
    qemu = _start_guest(before, "lf-cut")
    assert _pings(own, h2, before["address"])

    rc, out, err = _lab_cli(own, "link", "down", h1)
    assert (rc, err) == (0, "")
    assert json.loads(out)["link"] == "down"
    assert not _pings(own, h2, before["address"], count=2)
    assert not _pings(own, h1, _row(own, h2)["address"], count=2)
    cut = _row(own, h1)
    assert (cut["state"], cut["link"]) == ("up", "down")
    assert cut["keeper_pid"] == before["keeper_pid"]
    assert os.path.exists(f"/proc/{qemu}")
    assert own.link(h1, up=False)["link"] == "down"     # idempotent

    assert _lab_cli(own, "link", "up", h1)[0] == 0
    assert _pings(own, h2, before["address"], count=3)
    assert _row(own, h1)["link"] == "up"
    assert _domain_state(_row(own, h1), "lf-cut") == 1


def test_down_leaves_nothing_with_a_host_stopped_and_a_link_cut(
        lab_factory):
    own = lab_factory(2)
    h1, h2 = (r["name"] for r in own.status())
    own.start_daemon(h2, "agent", ["sleep", "600"])
    pids = all_pids(own)
    own.host_stop(h1)
    own.link(h2, up=False)
    assert [r["state"] for r in own.status()] == ["stopped", "up"]
    own.down()
    assert leftovers(own, pids) == []
    assert own.status() == []


def test_up_powers_a_stopped_host_on_and_keeps_its_storage(lab_factory):
    own = lab_factory(2)
    h1 = own.status()[0]["name"]
    own.host_exec(h1, ["sh", "-c", "echo kept > "
                       "/var/lib/drover/instances/kept"])
    own.host_stop(h1)
    rows = own.up(2)
    assert [r["state"] for r in rows] == ["up", "up"]
    assert own.host_exec(h1, ["cat", "/var/lib/drover/instances/kept"]) \
        == "kept\n"


def test_unknown_host_is_one_line_and_exit_2(lab_factory):
    own = lab_factory(1)
    for args in (("host", "stop", "h7"), ("host", "start", "nohost"),
                 ("link", "down", "h7")):
        rc, out, err = _lab_cli(own, *args)
        assert rc == 2, args
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert _row(own, own.status()[0]["name"])["state"] == "up"


def _fence(stdin):
    proc = subprocess.run([FENCE_AGENT], input=stdin, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_fence_agent_powers_a_lab_host_off_and_on(lab_factory):
    own = lab_factory(2)
    h1 = own.status()[0]["name"]
    qemu = _start_guest(_row(own, h1), "lf-fence")
    opts = f"plug={h1}\nlab_dir={own.lab_dir}\n"

    assert _fence("action=status\n" + opts) == (0, "Status: ON\n", "")
    assert _fence("action=off\n" + opts)[0] == 0
    assert not os.path.exists(f"/proc/{qemu}")
    assert _row(own, h1)["state"] == "stopped"
    assert _fence("action=status\n" + opts) == (2, "Status: OFF\n", "")
    assert _fence("action=off\n" + opts)[0] == 0          # already off
    assert _fence("action=on\n" + opts)[0] == 0
    assert _row(own, h1)["state"] == "up"
    assert _fence("action=status\n" + opts) == (0, "Status: ON\n", "")
    rc, out, err = _fence("action=status\nplug=h9\n"
                          f"lab_dir={own.lab_dir}\n")
    assert rc == 1 and out == "" and err.count("\n") == 1
