"""Disk leases on shared storage: a second host starting a disk that a
running guest uses is refused, by QEMU's image locks and by virtlockd's
leases (libvirt ``lock_manager = "lockd"``, lockspace on the lab's shared
storage), and allowed once that guest is gone, or its host powered off."""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import time
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from helpers import wait_guest

pytestmark = pytest.mark.integration

QEMU_LOCK = 'Failed to get "write" lock'
LEASE_LOCK = "is locked"           # virtlockd: Lockspace resource '...'
DOMAIN = ("<domain type='qemu'><name>{name}</name><memory unit='MiB'>64"
          "</memory><os><type arch='x86_64'>hvm</type></os>"
          "<features><acpi/></features>"
          "<devices>{disks}</devices></domain>")
DISK = ("<disk type='file' device='disk'><driver name='qemu' "
        "type='qcow2'/><source file='{path}'/><target dev='{dev}' "
        "bus='virtio'/></disk>")


@contextlib.contextmanager
def _libvirt(row):
    conn = libvirt.open(row["libvirt_uri"])
    try:
        yield conn
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _start_error(dom):
    """libvirt's message when ``dom`` fails to start, None if it runs."""
    try:
        dom.create()
    except libvirt.libvirtError as err:
        return err.get_error_message()
    return None


def _lease_holder(the_lab, path):
    """PID (root namespace) holding the write lock on the lease of disk
    ``path`` in the lockspace, or None (virtlockd removes a lease file
    it releases)."""
    lease = os.path.join(the_lab.files.lockspace_dir,
                         hashlib.sha256(path.encode()).hexdigest())
    try:
        f = open(lease, "rb")
    except FileNotFoundError:
        return None
    with f:
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(
            "hhqqi", fcntl.fcntl(f, fcntl.F_GETLK, query))
    return None if kind == fcntl.F_UNLCK else pid


def _virtlockd(the_lab, host):
    index = the_lab.plan.resolve(host).index
    with open(os.path.join(the_lab.lab_dir, "state.json")) as f:
        daemons = json.load(f)["daemons"]
    return next(d["pid"] for d in daemons
                if (d["host"], d["name"]) == (index, "virtlockd"))


def test_a_running_guests_shared_disk_is_refused_elsewhere(fleet, servers):
    servers.append("dl-shared")
    server = fleet.create("dl-shared", "lab.small", "--storage", "shared")
    a = server["host"]
    b = next(h for h in sorted(fleet.hosts) if h != a)
    ip = server["addresses"]
    boot = wait_guest(ip)["boot"]
    with _libvirt(fleet.hosts[a]) as conn:
        xml = ET.fromstring(conn.lookupByUUIDString(server["id"])
                            .XMLDesc(0))
    disks = xml.findall("./devices/disk")
    paths = [d.find("source").get("file") for d in disks]
    assert all(p.startswith("/var/lib/drover-shared/") for p in paths)
    _copy_backing_files(fleet, a, b, paths)
    second = DOMAIN.format(name=f"dl-second-{uuid.uuid4().hex[:6]}",
                           disks="".join(ET.tostring(d, "unicode")
                                         for d in disks))
    with _libvirt(fleet.hosts[b]) as conn:
        dom = conn.defineXML(second)
        try:
            refused = _start_error(dom)
            assert refused and (QEMU_LOCK in refused or
                                LEASE_LOCK in refused), refused
            assert not dom.isActive()
            # The guest on A never noticed, and A's virtlockd holds the
            # lease of its disk on the shared storage.
            assert fleet.domains(a)[server["id"]] == "running"
            assert wait_guest(ip)["boot"] == boot
            assert _lease_holder(fleet.lab, paths[0]) == \
                _virtlockd(fleet.lab, a)

            fleet.json("server", "stop", "dl-shared", "--wait")
            assert _lease_holder(fleet.lab, paths[0]) is None
            assert _start_error(dom) is None
            assert _lease_holder(fleet.lab, paths[0]) == \
                _virtlockd(fleet.lab, b)
        finally:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    assert fleet.domains(a)[server["id"]] == "shutoff"
    assert server["id"] not in fleet.domains(b)


def _copy_backing_files(fleet, a, b, paths):
    """B needs the image its disks are backed by in its own cache."""
    for path in paths:
        info = fleet.host_exec(a, ["qemu-img", "info", "-U",
                                   "--output=json", path])
        backing = json.loads(info).get("full-backing-filename")
        if not backing or not backing.startswith("/var/lib/drover/"):
            continue
        rel = os.path.relpath(backing, "/var/lib/drover")
        src = os.path.join(fleet.hosts[a]["local_storage_dir"], rel)
        dst = os.path.join(fleet.hosts[b]["local_storage_dir"], rel)
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst + ".part")
            os.rename(dst + ".part", dst)


def _wait_libvirt(row, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            libvirt.open(row["libvirt_uri"]).close()
            return
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _probe_disk(the_lab, host, path):
    the_lab.host_exec(host, ["mkdir", "-p", os.path.dirname(path)])
    the_lab.host_exec(host, ["qemu-img", "create", "-q", "-f", "qcow2",
                             path, "64M"])


def test_virtlockd_refuses_a_leased_disk_on_its_own(lab_factory):
    """The same path on two hosts holding two files (local storage):
    QEMU's locks cannot see each other, as on a shared file system whose
    locks do not cross hosts; virtlockd's lease alone refuses, and keeps
    refusing across a restart of A's libvirtd."""
    own = lab_factory(2)
    rows = own.status()
    a, b = rows[0]["name"], rows[1]["name"]
    path = f"/var/lib/drover/instances/{uuid.uuid4()}/disk"
    for host in (a, b):
        _probe_disk(own, host, path)
    disks = DISK.format(path=path, dev="vda")
    with _libvirt(rows[0]) as conn_a, _libvirt(rows[1]) as conn_b:
        first = conn_a.defineXML(DOMAIN.format(name="dl-a", disks=disks))
        first.create()
        second = conn_b.defineXML(DOMAIN.format(name="dl-b", disks=disks))
        refused = _start_error(second)
        assert refused and LEASE_LOCK in refused and \
            QEMU_LOCK not in refused, refused
        assert "Lockspace resource" in refused
        assert _lease_holder(own, path) == _virtlockd(own, a)

        own.stop_daemon(a, "libvirtd")
        own.start_daemon(a, "libvirtd", ["libvirtd", "--listen"])
        _wait_libvirt(rows[0])
        assert _start_error(second) and not second.isActive()

    with _libvirt(rows[0]) as conn_a, _libvirt(rows[1]) as conn_b:
        assert conn_a.lookupByName("dl-a").isActive()
        conn_a.lookupByName("dl-a").destroy()
        second = conn_b.lookupByName("dl-b")
        assert _start_error(second) is None
        assert _lease_holder(own, path) == _virtlockd(own, b)
        second.destroy()


def test_a_powered_off_host_releases_its_leases(lab_factory):
    """``lab host stop`` kills A's virtlockd with its guest: on one kernel
    its locks on the shared lockspace go with it, and B may start the
    disk at once."""
    own = lab_factory(2)
    rows = own.status()
    a = rows[0]["name"]
    path = f"/var/lib/drover-shared/instances/{uuid.uuid4()}/disk"
    _probe_disk(own, a, path)
    disks = DISK.format(path=path, dev="vda")
    with _libvirt(rows[0]) as conn_a:
        conn_a.defineXML(DOMAIN.format(name="dl-a", disks=disks)).create()
    # (A connection left open to a host powered off hangs on close: no
    # reply and no reset come back from it, as from a real one.)
    with _libvirt(rows[1]) as conn_b:
        second = conn_b.defineXML(DOMAIN.format(name="dl-b", disks=disks))
        assert _start_error(second)
        assert _lease_holder(own, path) == _virtlockd(own, a)
        own.host_stop(a)
        assert _lease_holder(own, path) is None
        assert _start_error(second) is None
        assert second.isActive()
        second.destroy()
