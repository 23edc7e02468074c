"""Evacuation under real faults, each on a lab of the test's own
(``own_fleet``): the session lab stays whole.

- A host really powered off (``lab host stop``), fenced through the lab
  fence agent (``fence_drover_lab``, registered by the lab for every
  host): its shared-storage guest evacuated with its data, its local one
  refused without --rebuild and rebuilt with it (same MAC and address);
  powered on again, it is reconciled: leftovers gone, shared disk
  untouched, no guest ever running twice.
- A host cut from the network (``lab link down``): down, not fenced, so
  not evacuated; fenced (powered off) through the lab agent, evacuated;
  back, its evacuated guest never runs there again.
- The controller SIGKILLed mid-evacuation: restarted, it resumes and the
  guest ends ACTIVE elsewhere, once.
- No capacity (the other host disabled): the evacuation fails with the
  scheduler's reason; the host returned keeps its guest, which starts
  there with its own data.
- The destination powered off mid-evacuation: the evacuation settles, and
  the instance is evacuated again to a third host.

Every host's running domains are sampled every 200 ms, each sample
through ``virsh`` inside the host: no libvirt connection is kept across a
power-off, nor opened to a host whose link is cut (such connections
hang).  Each test ends with ``drover fleet audit`` clean.
"""
import os
import signal
import sys
import threading
import time

import pytest

from coldmove import SHARED, entries, read_data, write_data
from helpers import new_findings, process_alive, wait_for, wait_guest

pytestmark = pytest.mark.integration


def _state(fleet, name):
    return fleet.json("host", "show", name)["state"]


def _running(fleet, host):
    """UUIDs of the domains running (or paused) on ``host``, through virsh
    inside it; none while it is off."""
    try:
        out = fleet.host_exec(host, ["virsh", "-c", "qemu:///system", "list",
                                     "--uuid"], check=False, timeout=10)
    except Exception:           # powered off: nothing runs there
        return set()
    return set(out.split())


class Sampler:
    """Every host's running domains, every 200 ms, in the background:
    ``doubles`` (a guest running on two hosts at once) and where each of
    ``watched`` was ever seen running."""

    def __init__(self, fleet, watched=()):
        self.fleet, self.doubles, self.samples = fleet, [], 0
        self.seen = {uuid: set() for uuid in watched}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            where = {}
            for host in self.fleet.hosts:
                for uuid in _running(self.fleet, host):
                    where.setdefault(uuid, []).append(host)
            self.doubles += [(u, h) for u, h in where.items() if len(h) > 1]
            for uuid, hosts in where.items():
                if uuid in self.seen:
                    self.seen[uuid].update(hosts)
            self.samples += 1
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(30)


def _report(fleet, host, *extra):
    rows = fleet.json("host", "evacuate", host, "--wait", *extra)
    return {r["Server"]: r for r in rows}


def _audit_clean(fleet):
    assert new_findings(fleet, set()) == []


def test_power_loss_guests_evacuated_and_the_host_reconciled(own_fleet):
    fleet = own_fleet(2)
    dead, dest = sorted(fleet.hosts)
    shared = fleet.create("pl-shared", "lab.small", "--host", dead,
                          "--storage", "shared")
    local = fleet.create("pl-local", "lab.small", "--host", dead)
    uuid, ip = shared["id"], shared["addresses"]
    written = write_data(ip, 21)
    local_written = write_data(local["addresses"], 22)

    fleet.lab.host_stop(dead)
    wait_for(lambda: _state(fleet, dead) == "down", 60,
              f"{dead} not marked down")
    fenced = fleet.json("host", "fence", dead, "--wait")
    assert fenced["state"] == "fenced", fenced

    report = _report(fleet, dead)
    assert report["pl-shared"]["Result"] == "evacuated", report
    assert report["pl-shared"]["Destination"] == dest
    assert report["pl-local"]["Result"] == "left behind", report
    assert "--rebuild" in report["pl-local"]["Reason"]
    moved = fleet.server("pl-shared")
    assert (moved["host"], moved["status"]) == (dest, "ACTIVE")
    assert fleet.server("pl-local")["host"] == dead
    wait_guest(ip)
    assert read_data(ip) == written                     # data intact
    booted = wait_guest(ip)["boot"]

    report = _report(fleet, dead, "--rebuild")
    assert report["pl-local"]["Result"] == "evacuated", report
    rebuilt = fleet.server("pl-local")
    assert (rebuilt["host"], rebuilt["status"]) == (dest, "ACTIVE")
    assert (rebuilt["id"], rebuilt["mac"], rebuilt["addresses"]) == \
        (local["id"], local["mac"], local["addresses"])
    wait_guest(local["addresses"])
    assert fleet.ping(dest, local["addresses"], count=3)
    assert read_data(local["addresses"]) != local_written   # fresh

    sampler = Sampler(fleet, [uuid, local["id"]])
    try:
        fleet.lab.host_start(dead)
        wait_for(lambda: _state(fleet, dead) == "up", 120,
                  f"{dead} not back up")
    finally:
        sampler.stop()
    assert sampler.samples > 0 and sampler.doubles == []
    assert sampler.seen == {uuid: {dest}, local["id"]: {dest}}
    doms = fleet.domains(dead)
    assert uuid not in doms and local["id"] not in doms  # leftovers gone
    assert local["id"] not in entries(fleet, dead)       # its local dir
    assert uuid in entries(fleet, dest, SHARED)          # shared: untouched
    assert read_data(ip) == written
    assert wait_guest(ip)["boot"] == booted              # never restarted
    assert fleet.domains(dest)[uuid] == "running"
    _audit_clean(fleet)


def test_network_cut_fenced_through_the_lab_agent(own_fleet):
    fleet = own_fleet(2)
    cut, dest = sorted(fleet.hosts)
    inst = fleet.create("nc-shared", "lab.small", "--host", cut,
                        "--storage", "shared")
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 23)

    fleet.lab.link(cut, False)
    wait_for(lambda: _state(fleet, cut) == "down", 60,
              f"{cut} not marked down")
    # Down, not fenced: it may still run the guest (it does).
    rc, out, err = fleet.cli("host", "evacuate", cut, "--wait",
                             check=False)
    assert rc == 2 and "fence" in err, (rc, out, err)
    assert uuid in _running(fleet, cut)
    assert fleet.server("nc-shared")["host"] == cut

    fenced = fleet.json("host", "fence", cut, "--wait")
    assert fenced["state"] == "fenced", fenced
    state = {h["name"]: h["state"] for h in fleet.lab.status()}[cut]
    assert state in ("stopped", "down"), state          # really off
    assert _running(fleet, cut) == set()

    sampler = Sampler(fleet, [uuid])
    try:
        report = _report(fleet, cut)
        assert report["nc-shared"]["Result"] == "evacuated", report
        moved = fleet.server("nc-shared")
        assert (moved["host"], moved["status"]) == (dest, "ACTIVE")
        assert read_data(ip) == written
        booted = wait_guest(ip)["boot"]

        fleet.lab.link(cut, True)
        fleet.lab.host_start(cut)
        wait_for(lambda: _state(fleet, cut) == "up", 120,
                  f"{cut} not back up")
        time.sleep(3)           # a few samples of the host back up
    finally:
        sampler.stop()
    assert sampler.samples > 0 and sampler.doubles == []
    assert sampler.seen[uuid] == {dest}     # never again on the cut host
    assert uuid not in _running(fleet, cut)
    assert uuid not in fleet.domains(cut)
    assert uuid in entries(fleet, dest, SHARED)
    assert read_data(ip) == written
    assert wait_guest(ip)["boot"] == booted
    _audit_clean(fleet)


def _controller_pid(fleet):
    """The PID of this lab's controller, found by its own config file."""
    conf = os.path.join(fleet.lab.lab_dir, "controller", "controller.conf")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "agent.controller.daemon" in argv and conf in argv:
            return int(entry)
    raise AssertionError("no controller running")


def _power_off_and_fence(fleet, host):
    fleet.lab.host_stop(host)
    wait_for(lambda: _state(fleet, host) == "down", 60,
              f"{host} not marked down")
    fenced = fleet.json("host", "fence", host, "--wait")
    assert fenced["state"] == "fenced", fenced


def _evacuations(fleet, name):
    return [m for m in fleet.json("server", "migration", "list", name)
            if m["Type"] == "evacuation"]


def _restart_controller(fleet):
    """The controller alone (lab fleet.start would also start the agent
    of the host that is powered off, and fail there)."""
    from agent.lab import fleet as lab_fleet
    conf = os.path.join(fleet.lab.lab_dir, "controller", "controller.conf")
    fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
    fleet.lab.start_daemon(None, lab_fleet.CONTROLLER,
                           [sys.executable, "-m", "agent.controller.daemon",
                            "--config-file", conf])

    def answers():
        try:
            fleet.call("host.list")
            return True
        except Exception:
            return False
    wait_for(answers, 60, "the controller did not come back")


def test_controller_killed_mid_evacuation_resumes(own_fleet):
    fleet = own_fleet(2)
    dead, dest = sorted(fleet.hosts)
    inst = fleet.create("ck-shared", "lab.small", "--host", dead,
                        "--storage", "shared")
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 24)
    _power_off_and_fence(fleet, dead)

    sampler = Sampler(fleet, [uuid])
    try:
        fleet.call("server.evacuate", name="ck-shared")
        wait_for(lambda: _evacuations(fleet, "ck-shared"), 30,
                  "no evacuation record")
        pid = _controller_pid(fleet)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not process_alive(pid), 10, "controller not dead")
        _restart_controller(fleet)
        wait_for(lambda: fleet.server("ck-shared")["task_state"] is None,
                  180, "the evacuation did not settle")
        moved = fleet.server("ck-shared")
        assert (moved["host"], moved["status"]) == (dest, "ACTIVE"), moved
        assert read_data(ip) == written
        booted = wait_guest(ip)["boot"]
        migs = _evacuations(fleet, "ck-shared")
        assert len(migs) == 1, migs

        fleet.lab.host_start(dead)
        wait_for(lambda: _state(fleet, dead) == "up", 120,
                  f"{dead} not back up")
    finally:
        sampler.stop()
    assert sampler.samples > 0 and sampler.doubles == []
    assert sampler.seen[uuid] == {dest}             # once, elsewhere
    assert uuid not in fleet.domains(dead)
    assert wait_guest(ip)["boot"] == booted
    _audit_clean(fleet)


def test_no_capacity_the_returning_host_keeps_its_guest(own_fleet):
    fleet = own_fleet(2)
    dead, other = sorted(fleet.hosts)
    inst = fleet.create("nocap", "lab.small", "--host", dead,
                        "--storage", "shared")
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 25)
    _power_off_and_fence(fleet, dead)
    fleet.cli("host", "disable", other)
    try:
        report = _report(fleet, dead)
        row = report["nocap"]
        assert row["Result"] == "failed", report
        assert "No valid host" in row["Reason"], row
        assert other in row["Reason"] and "disabled" in row["Reason"], row
        after = fleet.server("nocap")
        assert after["host"] == dead, after
        assert uuid not in fleet.domains(other)
        assert uuid in entries(fleet, other, SHARED)    # the disk kept

        sampler = Sampler(fleet, [uuid])
        try:
            fleet.lab.host_start(dead)
            wait_for(lambda: _state(fleet, dead) == "up", 120,
                      f"{dead} not back up")
            assert fleet.domains(dead)[uuid] == "shutoff"  # kept, not run
            fleet.cli("server", "start", "nocap", "--wait")
        finally:
            sampler.stop()
        assert sampler.doubles == [] and sampler.seen[uuid] <= {dead}
    finally:
        fleet.cli("host", "enable", other)
    back = fleet.server("nocap")
    assert (back["host"], back["status"]) == (dead, "ACTIVE"), back
    assert fleet.domains(dead)[uuid] == "running"
    assert read_data(ip) == written                     # its own data
    _audit_clean(fleet)


def test_destination_powered_off_mid_evacuation_evacuated_again(own_fleet):
    fleet = own_fleet(3)
    dead, first, second = sorted(fleet.hosts)
    inst = fleet.create("dd-shared", "lab.small", "--host", dead,
                        "--storage", "shared")
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 26)
    _power_off_and_fence(fleet, dead)
    fleet.cli("host", "disable", second)    # the first goes to ``first``
    try:
        fleet.call("server.evacuate", name="dd-shared")
        wait_for(lambda: fleet.json("server", "migration", "show",
                                     "dd-shared")["dest_host"] == first,
                  60, f"no evacuation to {first}")
        fleet.lab.host_stop(first)
        wait_for(lambda: fleet.server("dd-shared")["task_state"] is None,
                  300, "the evacuation did not settle")
        mig = fleet.json("server", "migration", "show", "dd-shared")
        assert mig["status"] in ("failed", "done"), mig     # not stuck
    finally:
        fleet.cli("host", "enable", second)
    wait_for(lambda: _state(fleet, first) == "down", 60,
              f"{first} not marked down")
    fleet.json("host", "fence", first, "--wait")

    sampler = Sampler(fleet, [uuid])
    try:
        again = fleet.json("server", "evacuate", "dd-shared", "--wait")
        assert (again["host"], again["status"]) == (second, "ACTIVE"), again
        assert read_data(ip) == written
        booted = wait_guest(ip)["boot"]
        for host in (dead, first):
            fleet.lab.host_start(host)
        for host in (dead, first):
            wait_for(lambda h=host: _state(fleet, h) == "up", 120,
                      f"{host} not back up")
    finally:
        sampler.stop()
    assert sampler.samples > 0 and sampler.doubles == []
    assert sampler.seen[uuid] == {second}
    for host in (dead, first):
        assert uuid not in fleet.domains(host)
    assert wait_guest(ip)["boot"] == booted
    _audit_clean(fleet)
