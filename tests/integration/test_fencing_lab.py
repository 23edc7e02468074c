"""Host states and fencing on the real lab, through the real controller
and CLI: a host set down is down for the scheduler while it answers;
``host set --up`` is refused while an evacuation from it is unfinished
and returns it through the poller; a fence agent that fails leaves the
host not fenced, says why and never shows its password; a fence agent
given by absolute path powers a lab host off (its keeper, PID 1 of the
host, killed: every process of the host dies) on a lab of the test's
own, the host is fenced and stays fenced while it is off, and when it
answers again it is reconciled and back up; and
Debian's fence_virsh, given by name, drives a fence end to end.

The fence agents here are written by the test and speak the
fence-agents protocol (options on stdin, action=off|status, "Status:
OFF" with exit 2).  The lab's own agent (fence_drover_lab) can replace
the power-off one once it exists."""
import json
import os
import sys
import time

import pytest

from helpers import wait_for

pytestmark = pytest.mark.integration

SECRET = "lab-fence-s3cret"

FAILING = r'''#!{python}
import sys
sys.stdin.read()
print("Failed: Unable to connect/login to fencing device", file=sys.stderr)
sys.exit(1)
'''

# Powers a lab host off the way power loss does: its keeper (PID 1 of
# the host's PID namespace) is killed, so every process there dies.
POWER = r'''#!{python}
import os, signal, sys
from agent.lab.lab import Lab
opts = dict(line.split("=", 1) for line in sys.stdin.read().splitlines()
            if "=" in line)
lab = Lab(opts["lab_dir"], opts["lab_name"], opts["network"])
[host] = [h for h in lab.status() if h["name"] == opts["plug"]]
action = opts.get("action")
if action == "off":
    if host["state"] != "down":
        os.kill(host["keeper_pid"], signal.SIGKILL)
    sys.exit(0)
if action in ("status", "monitor"):
    if host["state"] == "down":
        print("Status: OFF")
        sys.exit(2)
    print("Status: ON")
    sys.exit(0)
print("Failed: unsupported action", file=sys.stderr)
sys.exit(1)
'''


def _agent(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def _host(fleet, name):
    return fleet.json("host", "show", name)


def _row(fleet, name):
    return next(h for h in fleet.json("host", "list")
                if h["Name"] == name)


def _refused(fleet, *args):
    rc, out, err = fleet.cli(*args, check=False)
    assert rc == 2, (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def _store(fleet):
    from agent.controller.db import Store
    return Store("sqlite:///" + os.path.join(fleet.lab.lab_dir, "controller",
                                             "drover.db"))


def test_set_down_and_up_through_the_cli(fleet):
    name = sorted(fleet.hosts)[2]
    down = fleet.json("host", "set", "--down", name)
    try:
        assert (down["state"], down["forced_down"]) == ("down", True)
        assert down["reason"] == "set down by the operator"
        # It answers, and stays down: the operator's word wins ...
        seen = down["last_seen"]
        wait_for(lambda: _host(fleet, name)["last_seen"] != seen, 30,
                  f"{name} not polled")
        assert _host(fleet, name)["state"] == "down"
        assert _row(fleet, name)["Reason"] == "set down by the operator"
        # ... for the scheduler too.
        rc, out, err = fleet.cli("server", "create", "fx-never",
                                 "--flavor", "lab.small", "--image",
                                 "lab-guest", "--host", name, "--wait",
                                 check=False)
        assert rc != 0 and "Traceback" not in err
        assert "fx-never" not in {s["Name"] for s in
                                  fleet.json("server", "list")
                                  if s["Status"] == "ACTIVE"}

        # An unfinished evacuation from it: --up is refused.
        store = _store(fleet)
        try:
            mig = store.create_migration(
                "00000000-0000-4000-8000-00000000f001", "evacuation", name,
                sorted(fleet.hosts)[0], status="running")
            err = _refused(fleet, "host", "set", "--up", name)
            assert "evacuation" in err and str(mig["id"]) in err
            assert _host(fleet, name)["forced_down"]
            store.update_migration(mig["id"], status="failed")
        finally:
            store.close()
    finally:
        fleet.cli("server", "delete", "fx-never", "--wait", check=False)
        up = fleet.json("host", "set", "--up", name)
    assert not up["forced_down"]
    wait_for(lambda: _host(fleet, name)["state"] == "up", 30,
              f"{name} not back up")
    assert _host(fleet, name)["reason"] is None


def test_a_failing_fence_leaves_the_host_not_fenced(fleet, tmp_path):
    name = sorted(fleet.hosts)[1]
    agent = _agent(tmp_path, "fence_fails", FAILING)
    shown = fleet.json("host", "set", name, "--fence-agent", agent,
                       "--fence-option", f"password={SECRET}",
                       "--fence-option", "ip=198.18.0.250")
    try:
        assert shown["fence_agent"] == agent
        assert shown["fence_options"] == {"password": "***",
                                          "ip": "198.18.0.250"}
        rc, out, err = fleet.cli("host", "fence", name, "--wait",
                                 check=False)
        assert rc == 1, (rc, out, err)
        assert "Unable to connect/login" in err.splitlines()[-1]
        assert "Traceback" not in err and SECRET not in out + err
        host = _host(fleet, name)
        assert host["state"] == "up" and host["fenced_at"] is None
        assert "fence failed" in host["reason"]
        assert _row(fleet, name)["Fence Agent"] == agent
        everything = fleet.cli("host", "show", name, "-f", "json")[1] + \
            fleet.cli("host", "list", "--long", "-f", "json")[1]
        assert SECRET not in everything
        with open(os.path.join(fleet.lab.files.log_dir(),
                               "drover-controller.log")) as f:
            assert SECRET not in f.read()
        # A host with no fence agent: refused up front.
        fleet.json("host", "set", name, "--no-fence")
        assert "no fence agent" in _refused(fleet, "host", "fence", name)
        _refused(fleet, "host", "set", name, "--fence-agent",
                 str(tmp_path / "no_such_agent"))
        _refused(fleet, "host", "set", name)
    finally:
        fleet.cli("host", "set", name, "--no-fence", check=False)


def test_fence_powers_a_host_off_and_it_stays_fenced(own_fleet, tmp_path):
    """On a lab of its own: the host is really powered off."""
    from agent.lab import fleet as lab_fleet
    fleet = own_fleet(2)
    name = sorted(fleet.hosts)[1]
    lab = fleet.lab
    agent = _agent(tmp_path, "fence_lab_power", POWER)
    fleet.json("host", "set", name, "--fence-agent", agent,
               "--fence-option", f"plug={name}",
               "--fence-option", f"lab_dir={lab.lab_dir}",
               "--fence-option", f"lab_name={lab.plan.name}",
               "--fence-option", f"network={lab.plan.network}")
    try:
        before = _host(fleet, name)
        assert before["state"] == "up"
        started = fleet.json("host", "fence", name)
        assert started["task_id"]
        task = fleet.wait_task(started["task_id"], timeout=120)
        assert task["state"] == "done", task
        host = _host(fleet, name)
        assert host["state"] == "fenced" and host["fenced_at"]
        assert host["reason"].startswith("fenced at ")
        # Really off: the host and everything in it are gone.
        assert {h["name"]: h["state"] for h in lab.status()}[name] == "down"
        assert _row(fleet, name)["State"] == "fenced"
        # Unreachable for longer than host_down_after: still fenced.
        time.sleep(8)
        assert _host(fleet, name)["state"] == "fenced"
        # Fencing twice is harmless.
        fleet.cli("host", "fence", name, "--wait")
        assert _host(fleet, name)["state"] == "fenced"
    finally:
        lab.up(len(fleet.hosts))
        lab_fleet.start(lab, image_path=None, progress=lambda m: None)
    # It answers again: reconciled (nothing was evacuated from it), then
    # up, as issue 9's fencing on return says; no operator needed.
    wait_for(lambda: _host(fleet, name)["state"] == "up", 90,
              f"{name} not back up")
    host = _host(fleet, name)
    assert host["fenced_at"] is None and not host["forced_down"]
    fleet.cli("host", "set", name, "--no-fence")
    assert json.loads(fleet.cli("host", "show", name, "-f", "json")[1])[
        "fence_agent"] is None


SCRATCH = """<domain type='qemu'>
  <name>fx-fence-scratch</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <features><acpi/></features>
  <devices/>
</domain>"""
# fence_virsh's own default, after the lab's strict ssh_config.
VIRSH_SHELL = ("-t '/bin/bash -c \"" + r"PS1=\\[EXPECT\\]# "
               + "/bin/bash --noprofile --norc\"'")


@pytest.mark.skipif(not os.path.exists("/usr/sbin/fence_virsh"),
                    reason="fence-agents is not installed")
def test_a_real_fence_agent_drives_the_fence(fleet):
    """Debian's fence_virsh, given by name, run by drover with its options
    on stdin: it logs in to a lab host over SSH (strict host keys) and
    destroys the domain named by plug, then reports "Status: OFF".  The
    domain stands for the host's power here: a scratch domain, not a
    drover guest; the host whose fence method it is becomes fenced."""
    import libvirt
    name, target = sorted(fleet.hosts)[1], sorted(fleet.hosts)[0]
    ssh = fleet.lab.controller_ssh
    conn = libvirt.open(fleet.hosts[target]["libvirt_uri"])
    dom = conn.defineXML(SCRATCH)
    try:
        dom.create()
        fleet.json("host", "set", name, "--fence-agent", "fence_virsh",
                   "--fence-option", f"ip={fleet.hosts[target]['address']}",
                   "--fence-option", "username=root",
                   "--fence-option", f"identity_file={ssh['private_key']}",
                   "--fence-option",
                   f"ssh_options=-F {ssh['ssh_config']} {VIRSH_SHELL}",
                   "--fence-option", "plug=fx-fence-scratch")
        fenced = fleet.json("host", "fence", name, "--wait")
        assert fenced["state"] == "fenced", fenced
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        conn.close()
        fleet.cli("host", "set", name, "--no-fence", check=False)
        fleet.cli("host", "set", "--up", name, check=False)
    wait_for(lambda: _host(fleet, name)["state"] == "up", 30,
              f"{name} not back up")
