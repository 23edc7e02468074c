"""Evacuation on the real lab: refused while the host is up; a shared-
storage guest of a failed host evacuated with its data intact; the host's
return cleaned without ever running the guest twice.

The power loss is simulated until the lab's ``host stop`` (LAB2) is in
this branch: the host's agent is stopped and its guest destroyed through
the host's own libvirt.  The host is marked fenced in the controller's
database by hand until ``host fence`` / ``host set --down`` (FENCE) are.
"""
import sqlite3

import libvirt
import pytest

from coldmove import SHARED, entries, read_data, write_data
from helpers import Sampler, wait_for, wait_guest

pytestmark = pytest.mark.integration


def _host(fleet, name):
    return fleet.json("host", "show", name)


def _used(fleet, name):
    row = next(h for h in fleet.json("host", "list") if h["Name"] == name)
    return row["vCPUs Used"], row["RAM MB Used"]


def _fence_by_hand(fleet, name):
    """FENCE's ``host fence`` stand-in: the host's state in the store."""
    db = f"{fleet.lab.lab_dir}/controller/drover.db"
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("UPDATE hosts SET state = 'fenced' WHERE name = ?",
                     (name,))


def _power_loss(fleet, host, uuids):
    """LAB2's ``host stop`` stand-in: the agent stops answering and the
    guests die (destroyed through the host's libvirt)."""
    from agent.lab import fleet as lab_fleet
    fleet.lab.stop_daemon(host, lab_fleet.AGENT)
    conn = libvirt.open(fleet.hosts[host]["libvirt_uri"])
    try:
        for uuid in uuids:
            conn.lookupByUUIDString(uuid).destroy()
    finally:
        conn.close()


def _disk_source(fleet, host, uuid):
    conn = libvirt.open(fleet.hosts[host]["libvirt_uri"])
    try:
        xml = conn.lookupByUUIDString(uuid).XMLDesc(0)
    finally:
        conn.close()
    start = xml.index("<source file='") + len("<source file='")
    return xml[start:xml.index("'", start)]


def test_evacuation_is_refused_while_the_host_is_up(fleet, servers):
    host = sorted(fleet.hosts)[0]
    servers.append("ev-up")
    inst = fleet.create("ev-up", "lab.small", "--host", host,
                        "--storage", "shared")
    for argv in (("server", "evacuate", "ev-up"),
                 ("host", "evacuate", host, "--wait")):
        rc, out, err = fleet.cli(*argv, check=False)
        assert rc == 2, (argv, rc, out, err)
        assert len(err.strip().splitlines()) == 1 and "fence" in err
        assert "Traceback" not in err
    after = fleet.server("ev-up")
    assert (after["host"], after["status"]) == (host, "ACTIVE")
    assert fleet.domains(host)[inst["id"]] == "running"
    assert not [m for m in fleet.json("server", "migration", "list",
                                      "ev-up") if m["Type"] == "evacuation"]


def test_guests_evacuated_and_the_host_cleaned(fleet, servers):
    """A shared-storage guest keeps its disk and data; a local one comes
    back only with --rebuild, fresh, with its MAC and address."""
    from agent.lab import fleet as lab_fleet
    dead = sorted(fleet.hosts)[1]
    servers += ["ev-shared", "ev-local"]
    before = _used(fleet, dead)
    inst = fleet.create("ev-shared", "lab.small", "--host", dead,
                        "--storage", "shared")
    local = fleet.create("ev-local", "lab.small", "--host", dead)
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 11)
    local_written = write_data(local["addresses"], 12)
    disk = _disk_source(fleet, dead, uuid)
    assert disk.startswith(SHARED)
    assert local["id"] in entries(fleet, dead)

    _power_loss(fleet, dead, [uuid, local["id"]])
    try:
        wait_for(lambda: _host(fleet, dead)["state"] == "down", 60,
                  f"{dead} not marked down")
        # Down is not enough: unreachable hosts may still run guests.
        rc, _, err = fleet.cli("server", "evacuate", "ev-shared",
                               check=False)
        assert rc == 2 and "fence" in err
        _fence_by_hand(fleet, dead)
        shown = fleet.json("server", "evacuate", "ev-shared", "--wait")
        dest = shown["host"]
        assert dest != dead and shown["status"] == "ACTIVE"
        assert fleet.domains(dest)[uuid] == "running"
        assert fleet.domains(dead)[uuid] == "shutoff"   # the old one
        assert _disk_source(fleet, dest, uuid) == disk  # the same disk
        wait_guest(ip)
        assert read_data(ip) == written                 # data intact
        booted = wait_guest(ip)["boot"]
        mig = fleet.json("server", "migration", "show", "ev-shared")
        assert (mig["type"], mig["status"], mig["source_host"],
                mig["dest_host"]) == ("evacuation", "done", dead, dest)

        rc, _, err = fleet.cli("server", "evacuate", "ev-local",
                               check=False)
        assert rc == 2 and "local disk is lost" in err and "--rebuild" in err
        assert fleet.server("ev-local")["host"] == dead
        rebuilt = fleet.json("server", "evacuate", "ev-local", "--rebuild",
                             "--wait")
        assert rebuilt["host"] != dead and rebuilt["status"] == "ACTIVE"
        assert (rebuilt["id"], rebuilt["mac"], rebuilt["addresses"]) == \
            (local["id"], local["mac"], local["addresses"])
        wait_guest(local["addresses"])
        other = next(h for h in fleet.hosts
                     if h not in (dead, rebuilt["host"]))
        assert fleet.ping(other, local["addresses"], count=3)
        assert read_data(local["addresses"]) != local_written   # fresh
    finally:
        sampler = Sampler(fleet)
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)

    try:
        wait_for(lambda: _host(fleet, dead)["state"] == "up", 90,
                  f"{dead} not back up")
    finally:
        sampler.stop()
    assert sampler.samples > 0 and sampler.doubles == []
    assert uuid not in fleet.domains(dead)              # its leftover gone
    assert local["id"] not in fleet.domains(dead)
    assert local["id"] not in entries(fleet, dead)      # its local dir
    assert uuid in entries(fleet, dest, SHARED)         # shared: untouched
    assert read_data(ip) == written
    assert wait_guest(ip)["boot"] == booted             # never restarted
    assert fleet.domains(dest)[uuid] == "running"
    mig = fleet.json("server", "migration", "show", "ev-shared")
    assert mig["status"] == "completed"
    assert _used(fleet, dead) == before     # its claim there released


def test_a_host_declared_off_while_alive_keeps_its_guest(fleet, servers):
    """The operator's mistake: a host whose guest still runs is declared
    off (its agent stopped, the host fenced by hand).  QEMU's image lock
    refuses the shared disk elsewhere: the evacuation fails with that
    reason, nothing is destroyed, the guest runs on; when the agent is
    back the host keeps it."""
    from agent.lab import fleet as lab_fleet
    alive = sorted(fleet.hosts)[2]
    servers.append("ev-alive")
    inst = fleet.create("ev-alive", "lab.small", "--host", alive,
                        "--storage", "shared")
    uuid, ip = inst["id"], inst["addresses"]
    written = write_data(ip, 13)
    booted = wait_guest(ip)["boot"]
    fleet.lab.stop_daemon(alive, lab_fleet.AGENT)
    try:
        wait_for(lambda: _host(fleet, alive)["state"] == "down", 60,
                  f"{alive} not marked down")
        _fence_by_hand(fleet, alive)
        rc, out, err = fleet.cli("server", "evacuate", "ev-alive", "--wait",
                                 check=False)
        assert rc == 1, (rc, out, err)
        assert "lock" in err, err
        after = fleet.server("ev-alive")
        assert after["host"] == alive and "lock" in (after["fault"] or "")
        mig = fleet.json("server", "migration", "show", "ev-alive")
        assert (mig["type"], mig["status"]) == ("evacuation", "failed")
        running = [h for h, doms in fleet.all_domains().items()
                   if doms.get(uuid) == "running"]
        assert running == [alive]
        assert uuid in entries(fleet, alive, SHARED)
        assert wait_guest(ip)["boot"] == booted          # never restarted
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
    wait_for(lambda: _host(fleet, alive)["state"] == "up", 90,
              f"{alive} not back up")
    assert fleet.domains(alive)[uuid] == "running"       # still its own
    assert read_data(ip) == written
    assert wait_guest(ip)["boot"] == booted
    assert fleet.server("ev-alive")["host"] == alive
