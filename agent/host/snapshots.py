"""Snapshots of an instance's disk, as the controller takes them into
its image store: ``snapshot.create`` writes a standalone compact qcow2
either beside the disk (``snapshot-<image uuid>.qcow2`` in the instance
directory: the controller copies it away over SSH, hashing it on the
way, then ``snapshot.remove`` deletes it) or, when the image store is on
storage this host shares with the controller, straight into the store
(``dest_dir``, as ``<image uuid>``, the store's own name for the image:
nothing to copy, and nothing of it on this host's own disks).  The
instance's own disk and its backing chain are only read: a running guest
through libvirt's backup job (agent.hypervisor.backup, no pause, the
disk as it was when the job began), a stopped one through ``qemu-img
convert``.
"""
import hashlib
import os
import pathlib
import struct
import threading
import time
from xml.etree import ElementTree

from agent.common import disk, validate
from agent.common.errors import Conflict, DroverError
from agent.host.instances import idir
from agent.hypervisor import backup, domains

LIVE = ("running", "paused", "blocked")
COPY_TIMEOUT_S = 3600
_locks = {}
_locks_lock = threading.Lock()


def method_for(state):
    """How a domain in ``state`` (None: not defined) is copied: "live"
    (backup job) or "offline" (qemu-img)."""
    return "live" if state in LIVE else "offline"


def file_name(image_uuid):
    return f"snapshot-{validate.uuid(image_uuid)}.qcow2"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def qcow2_virtual_size(path):
    """The virtual size in a qcow2 file's header (big-endian, bytes 24
    to 32 after the magic): no qemu-img run for a file made here."""
    with open(path, "rb") as f:
        header = f.read(32)
    if len(header) < 32 or header[:4] != b"QFI\xfb":
        raise DroverError(f"{path} is not a qcow2 file")
    return struct.unpack(">Q", header[24:32])[0]


def _out(d, image_uuid, dest_dir):
    """Where ``create`` writes: the instance directory ``d``, or the
    image store ``dest_dir`` under the image's own name."""
    if dest_dir is None:
        return d.file(file_name(image_uuid))
    return pathlib.Path(validate.absolute_path(dest_dir, "image store")) \
        / validate.uuid(image_uuid)


def _lock(key):
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def disk_target(xml, disk_path):
    """The target device (e.g. "vda") of the disk at ``disk_path`` in a
    domain's XML."""
    for d in ElementTree.fromstring(xml).iter("disk"):
        source, target = d.find("source"), d.find("target")
        if source is not None and target is not None and \
                source.get("file") == disk_path:
            return target.get("dev")
    raise Conflict(f"the domain has no disk {disk_path}")


class Snapshots:
    """Bound to the agent's libvirt connection."""

    def __init__(self, conn):
        self.conn = conn

    def create(self, uuid, storage, image_uuid, dest_dir=None,
               checksum=True):
        """The snapshot file of ``image_uuid`` (made now, or found made);
        its path, size, virtual size, sha256 (None unless ``checksum``:
        the controller hashes what it receives) and how it was taken,
        with the seconds the copy and the hash took.  ``dest_dir``: the
        image store as this host sees it, where the file is written as
        ``<image uuid>``; default: the instance directory.  A second call
        while the first runs waits for it."""
        d = idir(uuid, storage)
        out = _out(d, image_uuid, dest_dir)
        with _lock(out):
            took = None
            if not out.is_file():
                took = self._take(uuid, d, out)
            started = time.monotonic()
            digest = sha256_file(out) if checksum else None
            return {"path": str(out), "size": out.stat().st_size,
                    "virtual_size": qcow2_virtual_size(out),
                    "sha256": digest,
                    "method": took and took[0], "seconds": took and took[1],
                    "hash_seconds": round(time.monotonic() - started, 3)
                    if checksum else None}

    def _take(self, uuid, d, out):
        part = out.with_name(out.name + ".part")
        part.unlink(missing_ok=True)
        state = domains.state(self.conn, uuid)
        how = method_for(state and state[0])
        started = time.monotonic()
        try:
            if how == "live":
                target = disk_target(domains.get_xml(self.conn, uuid),
                                     str(d.disk))
                backup.copy_disk(self.conn, uuid, target, str(part),
                                 COPY_TIMEOUT_S)
            else:
                disk.convert(str(d.disk), str(part), d.disk_format(),
                             "qcow2")
            os.chmod(part, 0o644)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        return how, round(time.monotonic() - started, 3)

    def remove(self, uuid, storage, image_uuid, dest_dir=None):
        """Remove the snapshot file (and a half-written one), from the
        instance directory or ``dest_dir`` (as ``create``: there only as
        the undo of a snapshot the store did not accept); absent:
        False."""
        out = _out(idir(uuid, storage), image_uuid, dest_dir)
        with _lock(out):
            part = out.with_name(out.name + ".part")
            found = out.is_file() or part.is_file()
            out.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
        return {"removed": found}

    def register(self, server):
        server.register_group("snapshot", self)
