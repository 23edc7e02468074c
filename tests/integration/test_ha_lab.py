"""Automatic recovery on the real lab, real guests:

- an HA guest's QEMU killed is restarted on its host; killed again past
  [ha] max_restart (1) it is relocated (a cold migration), ACTIVE;
- a failed host whose fence agent fails: nothing is evacuated, the
  reason is shown (host show, host event list), the fence is retried;
  the guest ran on throughout (uptime continuous);
- the controller stopped (20 s in CI, two minutes with
  DROVER_HA_OUTAGE_S=120): every guest keeps running
  (uptime continuous), and nothing moves when it returns;
- a host powered off (``Lab.host_stop``, a lab of the test's own): its
  HA guest is ACTIVE on the other host with its shared-storage data
  intact; its non-HA guest is left where it was for the operator.

The lab controller runs with [ha] startup_grace 15 s (agent.lab.fleet).
"""
import os
import signal
import sys
import time

import pytest

from coldmove import read_data, write_data
from helpers import guest_status, wait_for, wait_guest

pytestmark = pytest.mark.integration

HA = ("--property", "ha=true", "--storage", "shared")
# The outage: 20 s in CI (longer than lease_time + lease_margin: a
# controller that counted its own outage as the hosts' silence would
# recover them), the 2 minutes with DROVER_HA_OUTAGE_S=120.
OUTAGE_S = float(os.environ.get("DROVER_HA_OUTAGE_S", "20"))
GRACE_S = 15

FAILING = r'''#!{python}
import sys
sys.stdin.read()
with open({count!r}, "a") as f:
    f.write("run\n")
print("Failed: Unable to connect/login to fencing device", file=sys.stderr)
sys.exit(1)
'''


def _qemu_pid(uuid):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and uuid.encode() in argv:
            return int(pid)
    return None


def _kill_qemu(uuid):
    pid = _qemu_pid(uuid)
    assert pid, f"no QEMU process for {uuid}"
    os.kill(pid, signal.SIGKILL)


def _actions(fleet, name):
    return [r["Action"] for r in fleet.json("server", "event", "list",
                                            name)]


def _host_events(fleet, host):
    return fleet.json("host", "event", "list", host)


def test_qemu_killed_restarted_then_relocated(fleet, servers):
    home = sorted(fleet.hosts)[0]
    servers.append("ha-qemu")
    inst = fleet.create("ha-qemu", "lab.small", "--host", home, *HA)
    ip, uuid = inst["addresses"], inst["id"]
    first = wait_guest(ip)["boot"]

    _kill_qemu(uuid)
    wait_for(lambda: "ha-restart" in _actions(fleet, "ha-qemu") and
             fleet.server("ha-qemu")["status"] == "ACTIVE" and
             fleet.server("ha-qemu")["task_state"] is None, 60,
             "ha-qemu restarted")
    again = wait_guest(ip, timeout=90)
    assert again["boot"] != first                  # it booted again ...
    assert fleet.server("ha-qemu")["host"] == home  # ... on its host
    assert fleet.domains(home)[uuid] == "running"

    _kill_qemu(uuid)                                # past max_restart
    wait_for(lambda: fleet.server("ha-qemu")["host"] != home and
             fleet.server("ha-qemu")["status"] == "ACTIVE" and
             fleet.server("ha-qemu")["task_state"] is None, 120,
             "ha-qemu relocated")
    dest = fleet.server("ha-qemu")["host"]
    assert "ha-relocate" in _actions(fleet, "ha-qemu")
    wait_guest(ip, timeout=90)
    assert fleet.domains(dest)[uuid] == "running"
    assert uuid not in fleet.domains(home)
    status = {r["Name"]: r for r in fleet.json("ha", "status")}
    assert status["ha-qemu"]["Restarts"] == 1
    assert status["ha-qemu"]["Relocations"] == 1


def test_fence_agent_failing_evacuates_nothing_and_retries(
        fleet, servers, tmp_path):
    from agent.lab import fleet as lab_fleet
    host = sorted(fleet.hosts)[-1]
    servers.append("ha-nofence")
    inst = fleet.create("ha-nofence", "lab.small", "--host", host, *HA)
    ip = inst["addresses"]
    before = wait_guest(ip)
    count = tmp_path / "runs"
    agent = tmp_path / "fence_failing"
    agent.write_text(FAILING.format(python=sys.executable,
                                    count=str(count)))
    agent.chmod(0o755)
    fleet.cli("host", "set", "--fence-agent", str(agent), host)
    fleet.lab.stop_daemon(host, lab_fleet.AGENT)    # silent, guest runs
    try:
        wait_for(lambda: count.exists() and
                 len(count.read_text().split()) >= 2, 60,
                 "the failing fence agent run twice (retried)")
        shown = fleet.json("host", "show", host)
        assert shown["state"] != "fenced"
        assert "Unable to connect" in shown["fence_state"]
        assert "not fenced" in shown["recovery"]
        events = _host_events(fleet, host)
        assert [e["Event"] for e in events[-2:]] == ["failed", "fence"]
        assert "Unable to connect" in events[-1]["Details"]
        server = fleet.server("ha-nofence")
        assert server["host"] == host                   # nothing moved
        assert "evacuate" not in _actions(fleet, "ha-nofence")
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
        fleet.call("host.set_fence", name=host, agent=lab_fleet.fence_agent(),
                   options=lab_fleet.fence_options(fleet.lab, host))
    wait_for(lambda: fleet.json("host", "show", host)["state"] == "up", 60,
             f"{host} back up")
    after = guest_status(ip)
    assert after["boot"] == before["boot"]          # never restarted
    assert after["uptime"] > before["uptime"]
    wait_for(lambda: "abandoned" in [e["Event"] for e in
                                     _host_events(fleet, host)], 30,
             "the recovery abandoned (the host answers: it is alive)")
    assert fleet.server("ha-nofence")["host"] == host


def test_controller_stopped_two_minutes_moves_nothing(fleet, servers):
    from agent.lab import fleet as lab_fleet
    hosts = sorted(fleet.hosts)
    servers += ["ha-calm", "plain-calm"]
    guests = {"ha-calm": fleet.create("ha-calm", "lab.small", "--host",
                                      hosts[0], *HA),
              "plain-calm": fleet.create("plain-calm", "lab.small",
                                         "--host", hosts[-1])}
    before = {n: wait_guest(g["addresses"]) for n, g in guests.items()}
    events = {h: len(_host_events(fleet, h)) for h in hosts}
    fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
    try:
        time.sleep(OUTAGE_S)
        for name, g in guests.items():      # alive throughout
            assert guest_status(g["addresses"])["boot"] == \
                before[name]["boot"]
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
    time.sleep(GRACE_S + 5)                 # past the grace: still calm
    for name, g in guests.items():
        now = guest_status(g["addresses"])
        assert now["boot"] == before[name]["boot"]
        assert now["uptime"] >= before[name]["uptime"] + OUTAGE_S
        server = fleet.server(name)
        assert (server["host"], server["status"]) == (g["host"], "ACTIVE")
        assert fleet.domains(g["host"])[g["id"]] == "running"
    assert {h: len(_host_events(fleet, h)) for h in hosts} == events
    assert all(h["State"] == "up" for h in fleet.json("host", "list"))


def test_power_loss_ha_guest_active_elsewhere_data_intact(own_fleet):
    fleet = own_fleet(2)
    dead, other = sorted(fleet.hosts)
    ha = fleet.create("ha-power", "lab.small", "--host", dead, *HA)
    plain = fleet.create("plain-power", "lab.small", "--host", dead,
                         "--storage", "shared")
    written = write_data(ha["addresses"], 21)
    time.sleep(GRACE_S)                     # the lab controller's grace
    lost = time.monotonic()
    fleet.lab.host_stop(dead)
    back = wait_for(lambda: fleet.server("ha-power")["host"] == other and
                    fleet.server("ha-power")["status"] == "ACTIVE", 90,
                    "ha-power ACTIVE on the other host")
    print(f"power loss to ACTIVE elsewhere: {back - lost:.1f} s")
    wait_guest(ha["addresses"], timeout=60)
    assert read_data(ha["addresses"]) == written        # data intact
    assert fleet.domains(other)[ha["id"]] == "running"
    assert fleet.json("host", "show", dead)["state"] == "fenced"
    left = fleet.server("plain-power")
    assert left["host"] == dead                         # untouched
    assert plain["id"] not in fleet.domains(other)
    assert "ha-recover" in _actions(fleet, "ha-power")
    assert [e["Event"] for e in _host_events(fleet, dead)] == \
        ["failed", "fenced", "recovered"]
