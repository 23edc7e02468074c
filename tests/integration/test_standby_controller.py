"""Two controllers on one PostgreSQL database (drover lab up --controllers
2 --database postgresql): the basic moves work on PostgreSQL, and when the
leader is killed (SIGKILL) in the middle of a live migration or of a cold
migration's copy, the standby takes over and finishes the move: the guest
runs in one place, the database agrees with libvirt on every host, its
data is intact.  The old leader, started again, stands by and writes
nothing."""
import os
import signal
import time

import libvirt
import pytest

from coldmove import assert_only_on, pause_receiver, read_data, write_data
from helpers import audit_rows, process_alive, wait_for, wait_guest
from live_helpers import agent_options

pytestmark = pytest.mark.integration

NAME = "sb-guest"


def _leader(fleet):
    """(index, lab daemon record) of the controller that leads."""
    from agent.lab import fleet as lab_fleet
    with lab_fleet.leader_client(fleet.lab) as client:
        path = client.path
    for index in range(2):
        if lab_fleet.controller_socket(fleet.lab, index) == path:
            name = lab_fleet.controller_name(index)
            rec = next(d for d in fleet.lab.daemons()
                       if d["host"] is None and d["name"] == name)
            return index, rec
    raise AssertionError(f"no lab controller at {path}")


def _kill_leader(fleet):
    """SIGKILL the leader; wait until the standby leads and point the
    fleet's CLI at it.  Returns the old leader's index."""
    from agent.lab import fleet as lab_fleet
    index, rec = _leader(fleet)
    os.kill(rec["pid"], signal.SIGKILL)
    wait_for(lambda: not process_alive(rec["pid"]), 10, "the leader dies")
    with lab_fleet.leader_client(fleet.lab, timeout=30) as client:
        fleet.socket = client.path
    assert _leader(fleet)[0] != index
    return index


def _restart_as_standby(fleet, index):
    """Start the killed controller again: it stands by, and its CLI
    socket leads the CLI to the leader."""
    from agent.lab import fleet as lab_fleet
    # Forget the dead one's record (it is not running: nothing to stop).
    fleet.lab.stop_daemon(None, lab_fleet.controller_name(index))
    lab_fleet.start_controller(fleet.lab, index, progress=lambda m: None)
    socket = lab_fleet.controller_socket(fleet.lab, index)
    from agent.transport.local import LocalClient
    with LocalClient(socket, timeout=30) as client:
        who = client.call("controller.leader")
    assert who["role"] == "standby", who
    assert who["term"] is None
    # The CLI given the standby's socket reaches the leader.
    rc, out, err = fleet.cli_at(socket, "server", "list", "-f", "value",
                                "-c", "Name")
    assert (rc, out.split()) == (0, [NAME]), err
    return who


def _term(fleet):
    """The leader record's term."""
    return fleet.call("controller.leader")["leader"]["term"]


@pytest.fixture(scope="module")
def guest(standby_fleet):
    fleet = standby_fleet
    first = sorted(fleet.hosts)[0]
    server = fleet.create(NAME, "lab.small", "--host", first)
    written = write_data(server["addresses"], seed=53)
    yield {"name": NAME, "uuid": server["id"], "ip": server["addresses"],
           "written": written}
    fleet.delete_servers([NAME])


def _other(fleet, host):
    return sorted(set(fleet.hosts) - {host})[0]


def _assert_consistent(fleet, guest, host):
    server = fleet.server(guest["name"])
    assert server["status"] == "ACTIVE", server
    assert_only_on(fleet, server, host)
    assert read_data(guest["ip"]) == guest["written"]
    assert audit_rows(fleet) == []


def test_boot_cold_and_live_migration_on_postgresql(standby_fleet, guest):
    fleet = standby_fleet
    source = fleet.server(NAME)["host"]
    dest = _other(fleet, source)
    fleet.json("server", "migrate", NAME, "--host", dest, "--wait")
    fleet.json("server", "resize", "confirm", NAME, "--wait")
    _assert_consistent(fleet, guest, dest)
    boot = wait_guest(guest["ip"])["boot"]
    fleet.cli("server", "migrate", NAME, "--live-migration", "--host",
              source, "--wait")
    _assert_consistent(fleet, guest, source)
    assert wait_guest(guest["ip"])["boot"] == boot      # not rebooted


def test_leader_killed_mid_live_migration(standby_fleet, guest):
    fleet = standby_fleet
    source = fleet.server(NAME)["host"]
    dest = _other(fleet, source)
    boot = wait_guest(guest["ip"])["boot"]
    with agent_options(fleet, source, bandwidth=4):
        task_id = fleet.call("server.migrate", name=NAME, host=dest,
                             live=True)["task_id"]
        wait_for(lambda: _migration_running(fleet), 60,
                 "the live migration runs")
        old = _kill_leader(fleet)
        task = fleet.wait_task(task_id, 240)
    assert task["state"] == "done", task
    _assert_consistent(fleet, guest, dest)
    assert wait_guest(guest["ip"])["boot"] == boot      # not rebooted
    new_term = _term(fleet)
    assert fleet.call("task.show", id=task_id)["term"] == new_term
    _restart_as_standby(fleet, old)
    time.sleep(3)               # it would have taken the lease by now
    assert _term(fleet) == new_term
    assert fleet.call("task.show", id=task_id)["term"] == new_term


def _migration_running(fleet):
    try:
        mig = fleet.call("migration.show", name=NAME)
    except Exception:       # not recorded yet
        return False
    p = mig.get("progress") or {}
    return mig["status"] == "running" and bool(
        p.get("data_processed") or p.get("disk_processed")
        or p.get("memory_processed"))


def test_leader_killed_mid_cold_migration_copy(standby_fleet, guest):
    fleet = standby_fleet
    server = fleet.server(NAME)
    source = server["host"]
    dest = _other(fleet, source)
    task_id = fleet.call("server.migrate", name=NAME, host=dest)["task_id"]
    pid = pause_receiver(server["id"])
    try:
        old = _kill_leader(fleet)
    finally:
        os.kill(pid, signal.SIGCONT)
    task = fleet.wait_task(task_id, 240)
    assert task["state"] == "done", task
    moved = fleet.server(NAME)
    assert (moved["status"], moved["host"]) == ("VERIFY_RESIZE", dest)
    fleet.json("server", "resize", "confirm", NAME, "--wait")
    _assert_consistent(fleet, guest, dest)
    _restart_as_standby(fleet, old)
    conn = libvirt.open(fleet.hosts[source]["libvirt_uri"])
    try:
        assert guest["uuid"] not in [d.UUIDString()
                                     for d in conn.listAllDomains()]
    finally:
        conn.close()
