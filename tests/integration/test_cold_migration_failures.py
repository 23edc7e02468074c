"""Cold migration with failures injected: each ends with the guest running
on its source with its data intact (or, for a controller restart, the
move completed), and nothing left on the destination."""
import os
import signal
import time

import libvirt
import pytest

from coldmove import (assert_only_on, entries, migration, pause_receiver,
                      read_data, write_data)
from helpers import wait_guest

pytestmark = [pytest.mark.integration,
              # a sample of the fault matrix on the real lab, judged by
              # drover fleet audit as the simulated one is
              pytest.mark.usefixtures("audit_unchanged")]


@pytest.fixture(scope="module")
def guest(fleet):
    """One running guest with data written, shared by the tests (each
    leaves it ACTIVE on its host)."""
    server = fleet.create("cmf-guest")
    written = write_data(server["addresses"], seed=31)
    yield {"name": "cmf-guest", "written": written}
    fleet.delete_servers(["cmf-guest"])


def _other(fleet, host):
    return sorted(set(fleet.hosts) - {host})[0]


def _start_migration(fleet, name, dest):
    return fleet.call("server.migrate", name=name, host=dest)["task_id"]


def _assert_back_on_source(fleet, guest, source, dest, boot, reason):
    server = fleet.server(guest["name"])
    assert server["status"] == "ACTIVE", server
    assert reason in (server["fault"] or ""), server["fault"]
    assert_only_on(fleet, server, source)
    assert server["id"] not in entries(fleet, dest)
    ip = server["addresses"]
    assert wait_guest(ip)["boot"] != boot       # powered off, started again
    assert read_data(ip) == guest["written"]
    mig = migration(fleet, guest["name"])
    assert (mig["status"], mig["dest_host"]) == ("error", dest)
    events = fleet.json("server", "event", "list", guest["name"])
    assert events[-1]["Action"] == "migrate"
    assert events[-1]["Result"] == "Error"
    assert fleet.call("host.show", name=dest)  # still a known host


def _begin(fleet, guest):
    server = fleet.server(guest["name"])
    assert server["status"] == "ACTIVE"
    source = server["host"]
    return server, source, _other(fleet, source), \
        wait_guest(server["addresses"])["boot"]


def test_destination_disk_full(fleet, guest):
    server, source, dest, boot = _begin(fleet, guest)
    # A 4 MiB file system over the destination's instances directory,
    # inside that host's own mount namespace only.
    fleet.host_exec(dest, ["mount", "-t", "tmpfs", "-o", "size=4m",
                           "drover-test-full", "/var/lib/drover/instances"])
    try:
        task = fleet.wait_task(_start_migration(fleet, guest["name"], dest))
        assert task["state"] == "failed"
        assert "disk full" in task["error"]
        leftover = fleet.host_exec(dest, ["ls", "-a",
                                          "/var/lib/drover/instances"])
        assert server["id"] not in leftover
    finally:
        fleet.host_exec(dest, ["umount", "/var/lib/drover/instances"])
    _assert_back_on_source(fleet, guest, source, dest, boot, "disk full")


def test_copy_cut_off(fleet, guest):
    server, source, dest, boot = _begin(fleet, guest)
    task_id = _start_migration(fleet, guest["name"], dest)
    pid = pause_receiver(server["id"])
    os.kill(pid, signal.SIGKILL)
    task = fleet.wait_task(task_id)
    assert task["state"] == "failed" and "cut off" in task["error"]
    _assert_back_on_source(fleet, guest, source, dest, boot, "cut off")


def test_destination_agent_killed_mid_copy(fleet, guest):
    from agent.lab import fleet as lab_fleet
    server, source, dest, boot = _begin(fleet, guest)
    task_id = _start_migration(fleet, guest["name"], dest)
    pid = pause_receiver(server["id"])
    try:
        fleet.lab.stop_daemon(dest, lab_fleet.AGENT)
    finally:
        os.kill(pid, signal.SIGCONT)
    task = fleet.wait_task(task_id)
    assert task["state"] == "failed"
    server = fleet.server(guest["name"])
    assert server["status"] == "ACTIVE" and server["host"] == source
    assert fleet.domains(source)[server["id"]] == "running"
    assert read_data(server["addresses"]) == guest["written"]
    # The copy that reached the destination is removed once its agent is
    # back (the controller retries).
    lab_fleet.start(fleet.lab, None, progress=lambda m: None)
    deadline = time.monotonic() + 60
    while server["id"] in entries(fleet, dest):
        assert time.monotonic() < deadline, "copy left on the destination"
        time.sleep(1)
    _assert_back_on_source(fleet, guest, source, dest, boot, "")


def test_libvirt_refuses_the_domain_on_the_destination(fleet, guest):
    server, source, dest, boot = _begin(fleet, guest)
    # A stale domain of the same name (another UUID) on the destination:
    # libvirt refuses to define ours there.
    conn = libvirt.open(fleet.hosts[dest]["libvirt_uri"])
    stale = conn.defineXML(
        f"<domain type='qemu'><name>instance-{server['id']}</name>"
        "<uuid>00000000-0000-4000-8000-00000000c01d</uuid>"
        "<memory unit='MiB'>32</memory>"
        "<os><type arch='x86_64'>hvm</type></os>"
        "<features><acpi/></features></domain>")
    try:
        task = fleet.wait_task(_start_migration(fleet, guest["name"], dest))
        assert task["state"] == "failed"
        assert "already exists" in task["error"]
        assert stale.UUIDString() in {d.UUIDString()
                                      for d in conn.listAllDomains(0)}
    finally:
        stale.undefine()
        conn.close()
    _assert_back_on_source(fleet, guest, source, dest, boot,
                           "already exists")


def test_controller_restart_mid_copy_finishes_the_move(fleet, guest):
    from agent.lab import fleet as lab_fleet
    from helpers import controller_pid, process_alive
    server, source, dest, boot = _begin(fleet, guest)
    task_id = _start_migration(fleet, guest["name"], dest)
    pid = pause_receiver(server["id"])
    try:
        controller = controller_pid(fleet)
        os.kill(controller, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(controller):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
        lab_fleet.start(fleet.lab, None, progress=lambda m: None)
    finally:
        os.kill(pid, signal.SIGCONT)
    task = fleet.wait_task(task_id)
    assert task["state"] == "done", task
    moved = fleet.server(guest["name"])
    assert (moved["status"], moved["host"]) == ("VERIFY_RESIZE", dest)
    fleet.json("server", "resize", "confirm", guest["name"], "--wait")
    server = fleet.server(guest["name"])
    assert_only_on(fleet, server, dest)
    assert wait_guest(server["addresses"])["boot"] != boot
    assert read_data(server["addresses"]) == guest["written"]
