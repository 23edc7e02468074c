"""Live migrations that fail once libvirt's incoming copy exists on the
destination: the destination's QEMU killed, the destination cut off from
the network (block and shared-storage migration), an operator's abort.
Each must end with the guest running on its source only, not rebooted,
its data intact; nothing of it left on the destination (no domain, no
instance directory of its own, no claim); no fault on the instance; the
migration record failed or cancelled with the reason."""
import dataclasses
import time

import libvirt
import pytest

from helpers import guest_get, wait_guest
from live_helpers import agent_options, allocated, cut_off, heartbeat

pytestmark = [pytest.mark.integration,
              # a sample of the fault matrix on the real lab, judged by
              # drover fleet audit as the simulated one is
              pytest.mark.usefixtures("audit_unchanged")]

NAME = "lmf-guest"
SHARED_NAME = "lmf-shared"
INSTANCES = {"local": "/var/lib/drover/instances",
             "shared": "/var/lib/drover-shared/instances"}
# Slow enough that the destination's incoming domain is seen in time.
SLOW = dict(bandwidth=4)
INCOMING = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION)


def _boot(fleet, name, storage, seed):
    first = sorted(fleet.hosts)[0]
    server = fleet.create(name, "lab.small", "--host", first,
                          "--storage", storage)
    wait_guest(server["addresses"])
    written = guest_get(server["addresses"],
                        f"/cgi-bin/data-write?seed={seed}", timeout=60)
    return {"name": name, "storage": storage, "uuid": server["id"],
            "ip": server["addresses"], "written": written}


@pytest.fixture(scope="module")
def guest(fleet):
    """One running guest on local storage (block migrations) with data
    written, shared by the tests (each leaves it ACTIVE on its host)."""
    yield _boot(fleet, NAME, "local", 41)
    fleet.delete_servers([NAME])


@pytest.fixture(scope="module")
def shared_guest(fleet):
    """The same on shared storage."""
    yield _boot(fleet, SHARED_NAME, "shared", 43)
    fleet.delete_servers([SHARED_NAME])


@dataclasses.dataclass
class Attempt:
    source: str
    dest: str
    boot: str
    uptime: float
    dest_allocated: tuple


def _begin(fleet, guest):
    server = fleet.server(guest["name"])
    assert server["status"] == "ACTIVE", server
    source = server["host"]
    dest = sorted(set(fleet.hosts) - {source})[0]
    status = wait_guest(guest["ip"])
    heartbeat(fleet, guest["name"], newer_than=1)
    return Attempt(source, dest, status["boot"], status["uptime"],
                   allocated(fleet, dest))


def _start(fleet, guest, dest):
    return fleet.call("server.migrate", name=guest["name"], host=dest,
                      live=True)["task_id"]


def _copying(fleet, guest, dest, timeout=120):
    """Wait until the block migration copies into libvirt's incoming
    domain on ``dest`` (paused for the migration, the migration record
    showing data sent); the states libvirt showed on the way."""
    conn = libvirt.open(fleet.hosts[dest]["libvirt_uri"])
    seen = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = tuple(conn.lookupByUUIDString(guest["uuid"])
                              .state())
            except libvirt.libvirtError:
                state = None
            if not seen or seen[-1] != state:
                seen.append(state)
            if state == INCOMING and _sent(fleet, guest):
                print(f"\nincoming domain on {dest}: {seen}")
                return seen
            time.sleep(0.2)
        raise AssertionError(f"no copy into {dest}: {seen}")
    finally:
        conn.close()


def _sent(fleet, guest):
    try:
        mig = fleet.call("migration.show", name=guest["name"])
    except Exception:       # not recorded yet
        return False
    p = mig.get("progress") or {}
    return mig["status"] == "running" and (
        p.get("data_processed") or p.get("disk_processed")
        or p.get("memory_processed"))


def _given_up(fleet, guest, dest, task_id, timeout=300):
    """Wait until the task rolls back or libvirt on ``dest`` (asked inside
    that host) has dropped its incoming domain."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fleet.call("task.show", id=task_id)["state"] != "running":
            return
        state = fleet.host_exec(dest, ["virsh", "-c", "qemu:///system",
                                       "domstate", guest["uuid"]],
                                check=False)
        if not state.strip():
            print(f"{dest} dropped its incoming domain")
            return
        time.sleep(1)
    raise AssertionError(f"the migration to {dest} goes on without it")


def _assert_failed_cleanly(fleet, guest, attempt, task, status):
    assert task["state"] == "failed", task
    name, instances = guest["name"], INSTANCES[guest["storage"]]
    mig = fleet.call("migration.show", name=name)
    print(f"migration {mig['status']}: {mig['error']}; task: "
          f"{task['error']}; last step: {task['progress']}")
    server = fleet.server(name)
    left = fleet.host_exec(attempt.dest, ["ls", "-a", instances])
    print(f"{attempt.dest} after: allocated {allocated(fleet, attempt.dest)}"
          f" (before {attempt.dest_allocated}), directory "
          f"{'there' if guest['uuid'] in left else 'gone'}; instance "
          f"{server['status']}, fault {server['fault']!r}")
    assert (server["status"], server["host"]) == ("ACTIVE",
                                                  attempt.source), server
    where = {h: doms[guest["uuid"]] for h, doms in
             fleet.all_domains().items() if guest["uuid"] in doms}
    assert where == {attempt.source: "running"}
    after = wait_guest(guest["ip"])
    assert after["boot"] == attempt.boot            # not rebooted
    assert after["uptime"] > attempt.uptime         # uptime not reset
    assert guest_get(guest["ip"], "/cgi-bin/data-read",
                     timeout=60) == guest["written"]
    if guest["storage"] == "local":
        assert guest["uuid"] not in left, f"left on {attempt.dest}: {left}"
    else:                           # the source's own directory
        assert guest["uuid"] in fleet.host_exec(attempt.source,
                                                ["ls", instances])
    assert allocated(fleet, attempt.dest) == attempt.dest_allocated
    assert mig["status"] == status and mig["dest_host"] == attempt.dest
    assert mig["error"], mig
    events = fleet.json("server", "event", "list", name)
    assert events[-1]["Result"] == "Error", events[-1]
    assert not server["fault"], server["fault"]
    return mig


def test_destination_qemu_killed_mid_migration(fleet, guest):
    attempt = _begin(fleet, guest)
    with agent_options(fleet, attempt.source, **SLOW):
        task_id = _start(fleet, guest, attempt.dest)
        _copying(fleet, guest, attempt.dest)
        pid = fleet.host_exec(attempt.dest, [
            "cat", f"/run/libvirt/qemu/instance-{guest['uuid']}.pid"])
        fleet.host_exec(attempt.dest, ["kill", "-KILL", pid.strip()])
        task = fleet.wait_task(task_id, 300)
    _assert_failed_cleanly(fleet, guest, attempt, task, "failed")


def test_destination_cut_off_mid_copy(fleet, guest):
    attempt = _begin(fleet, guest)
    with agent_options(fleet, attempt.source, **SLOW):
        task_id = _start(fleet, guest, attempt.dest)
        _copying(fleet, guest, attempt.dest)
        with cut_off(fleet, attempt.dest):
            # The source's libvirt waits on the stalled disk copy for as
            # long as TCP does; the destination's gives up the migration
            # (its keepalive) and drops its incoming domain.  The link is
            # back then, the copy's connection is refused and the source
            # fails the migration.
            _given_up(fleet, guest, attempt.dest, task_id)
        task = fleet.wait_task(task_id, 300)
    _assert_failed_cleanly(fleet, guest, attempt, task, "failed")


def test_operator_abort_cleans_the_destination(fleet, guest):
    attempt = _begin(fleet, guest)
    with agent_options(fleet, attempt.source, **SLOW):
        task_id = _start(fleet, guest, attempt.dest)
        _copying(fleet, guest, attempt.dest)
        fleet.cli("server", "migration", "abort", guest["name"])
        task = fleet.wait_task(task_id, 300)
    _assert_failed_cleanly(fleet, guest, attempt, task, "cancelled")


def test_destination_cut_off_shared_storage(fleet, shared_guest):
    """No disk copy: the source's libvirt notices the lost destination
    (keepalive) about when the destination's does, so the undo may find
    libvirt's incoming domain still there once the link is back."""
    guest = shared_guest
    attempt = _begin(fleet, guest)
    with agent_options(fleet, attempt.source, **SLOW):
        task_id = _start(fleet, guest, attempt.dest)
        _copying(fleet, guest, attempt.dest)
        with cut_off(fleet, attempt.dest):
            _given_up(fleet, guest, attempt.dest, task_id)
        task = fleet.wait_task(task_id, 300)
    _assert_failed_cleanly(fleet, guest, attempt, task, "failed")
