"""What the cold-migration and resize tests share: where an instance's
files and domains are, and a handle on a copy in flight."""
import os
import signal
import time

import libvirt

from helpers import guest_get, wait_guest

LOCAL = "/var/lib/drover/instances"
SHARED = "/var/lib/drover-shared/instances"


def entries(fleet, host, base=LOCAL):
    out = fleet.host_exec(host, ["ls", "-a", base], check=False)
    return set(out.split())


def write_data(ip, seed):
    """Fill the guest's data area; returns the sha256 it reports."""
    wait_guest(ip)
    out = guest_get(ip, f"/cgi-bin/data-write?seed={seed}", timeout=60)
    assert out.startswith("sha256="), out
    return out


def read_data(ip):
    wait_guest(ip)
    return guest_get(ip, "/cgi-bin/data-read", timeout=60)


def assert_only_on(fleet, server, host, state="running", base=LOCAL,
                   resize_dir=False):
    """The database, libvirt and the instance directories agree: the
    instance is on ``host`` (domain in ``state``) and nowhere else."""
    uuid = server["id"]
    assert server["host"] == host
    for name in fleet.hosts:
        doms = fleet.domains(name)
        if name == host:
            assert doms.get(uuid) == state, (name, doms)
        else:
            assert uuid not in doms, f"domain left on {name}"
        if base == LOCAL:
            seen = entries(fleet, name)
            assert (uuid in seen) == (name == host), (name, seen)
            if not resize_dir:
                assert uuid + "_resize" not in seen, name
    if base == SHARED:
        seen = entries(fleet, host, SHARED)
        assert uuid in seen
        if not resize_dir:
            assert uuid + "_resize" not in seen


def domain_memory_mib(fleet, host, uuid):
    conn = libvirt.open(fleet.hosts[host]["libvirt_uri"])
    try:
        return conn.lookupByUUIDString(uuid).maxMemory() // 1024
    finally:
        conn.close()


def virtual_size(fleet, host, uuid, base=LOCAL):
    import json
    out = fleet.host_exec(host, ["qemu-img", "info", "--force-share",
                                 "--output=json", f"{base}/{uuid}/disk"])
    return json.loads(out)["virtual-size"]


def migration(fleet, name):
    return fleet.call("migration.show", name=name)


def wait_status(fleet, name, statuses, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = fleet.server(name)
        if server["status"] in statuses and server["task_state"] is None:
            return server
        time.sleep(0.3)
    raise AssertionError(f"{name} is {fleet.server(name)['status']}")


def _receivers(uuid):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"receive-disk" in argv and any(uuid.encode() in a for a in argv):
            found.append(int(pid))
    return found


def pause_receiver(uuid, timeout=120):
    """Catch the receiving end of ``uuid``'s copy (its first file) and
    stop it (SIGSTOP): the copy hangs mid-way until it is continued or
    killed.  Returns its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _receivers(uuid):
            try:
                os.kill(pid, signal.SIGSTOP)
                return pid
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    raise AssertionError("no copy of the instance started")
