"""Agent primitives of cold migration and resize; each can run twice.

Source host: ``move.power_off``, ``move.to_resize`` (``<uuid>`` ->
``<uuid>_resize``), ``move.convert_raw``, ``move.copy_start`` /
``move.copy_status`` (the copy runs in the background: over SSH with
agent.transport.diskcopy to another host, or with ``cp --sparse=always``
into a new ``<uuid>`` on the same shared file system, so that revert still
has the ``_resize`` original), ``move.restore`` and ``move.discard``
(revert, confirm).  Destination host: ``move.finish_disk`` (rebase onto the
cached image, grow).  Either: ``move.base`` (where this host keeps
instance directories); the shared-storage test is agent.host.storage's.
"""
import json
import logging
import os
import shlex
import shutil
import sys
import threading
import time

from agent.common import disk, process, validate
from agent.common.errors import DroverError, NotFound, one_line
from agent.conf import CONF
from agent.host import instances
from agent.hypervisor import domains
from agent.transport import diskcopy

LOG = logging.getLogger(__name__)
COPYING_SUFFIX = "_copying"
JOB_KEEP = 3600          # seconds a finished copy job is remembered


def _resize_formats(d):
    try:
        return json.loads((d.resize_path / "disk.info").read_text())
    except FileNotFoundError:
        return {}


def receiver_argv():
    """The command the destination runs to receive a file (over SSH)."""
    if CONF.compute.receive_disk_command:
        return shlex.split(CONF.compute.receive_disk_command)
    return [sys.executable, "-m", "agent.host.daemon", "receive-disk"]


class CopyJob:
    """One background copy of an instance's ``_resize`` files."""

    def __init__(self, key, fn):
        self.key, self.fn = key, fn
        self.state, self.error, self.kind = "running", None, None
        self.result = None
        self.done, self.total = 0, 0
        self.finished_at = None
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"copy-{key[:8]}")

    def progress(self, done, total):
        self.done, self.total = done, total

    def _run(self):
        try:
            self.result = self.fn(self.progress)
            self.state = "done"
        except Exception as err:       # reported through status()
            LOG.warning("copy %s failed: %s", self.key, err)
            self.error = one_line(err)
            self.kind = type(err).__name__
            self.state = "failed"
        self.finished_at = time.monotonic()

    def status(self):
        percent = 100.0 * self.done / self.total if self.total else (
            100.0 if self.state == "done" else 0.0)
        return {"state": self.state, "error": self.error, "kind": self.kind,
                "bytes_done": self.done, "bytes_total": self.total,
                "percent": round(percent, 1), "result": self.result}


class Moves:
    def __init__(self, conn):
        self.conn = conn
        self.instances = instances.Instances(conn)
        self._jobs = {}
        self._lock = threading.Lock()

    # -- shared-storage check ----------------------------------------------

    def base(self, storage):
        return {"path": instances.base_path(storage)}

    # -- source ---------------------------------------------------------------

    def power_off(self, uuid, shutdown_timeout=None):
        """Graceful shutdown, destroy after the timeout; off already: ok."""
        if not domains.exists(self.conn, uuid):
            return {"result": domains.ALREADY_OFF}
        return self.instances.stop(uuid, shutdown_timeout)

    def to_resize(self, uuid, storage):
        return {"moved": instances.idir(uuid, storage).move_to_resize()}

    def restore(self, uuid, storage):
        return {"moved": instances.idir(uuid, storage).restore_from_resize()}

    def discard(self, uuid, storage):
        return {"removed": instances.idir(uuid, storage).remove_resize()}

    def convert_raw(self, uuid, storage):
        """qcow2 disk of the ``_resize`` directory -> raw (flattened)."""
        d = instances.idir(uuid, storage)
        formats = _resize_formats(d)
        if formats.get("disk", "qcow2") != "qcow2":
            return {"converted": False}
        path = str(d.resize_path / "disk")
        disk.convert(path, path, "qcow2", "raw")
        formats["disk"] = "raw"
        tmp = d.resize_path / "disk.info.part"
        tmp.write_text(json.dumps(formats, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, d.resize_path / "disk.info")
        return {"converted": True}

    def copy_start(self, key, uuid, storage, dest_address=None,
                   dest_base=None):
        """Start copying ``<uuid>_resize``'s files (job ``key``, e.g. the
        migration uuid): to ``dest_base/<uuid>`` on ``dest_address`` over
        SSH, or with no address into ``<uuid>`` beside it.  A job of that
        key already running or done is kept; returns its status."""
        validate.uuid(key)
        d = instances.idir(uuid, storage)
        if not d.resize_path.is_dir():
            raise NotFound(f"no {d.resize_path} to copy")
        if dest_address is None:
            fn = lambda progress: _copy_local(d, progress)  # noqa: E731
        else:
            dest_dir = os.path.join(validate.absolute_path(
                dest_base, "destination path"), d.uuid)
            fn = lambda progress: _send(  # noqa: E731
                str(d.resize_path), dest_address, dest_dir, dest_base,
                progress)
        with self._lock:
            self._prune()
            job = self._jobs.get(key)
            if job is None or job.state == "failed":
                job = self._jobs[key] = CopyJob(key, fn)
                job.thread.start()
            return job.status()

    def copy_status(self, key):
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return {"state": "none"}
        return job.status()

    def _prune(self):
        now = time.monotonic()
        for key, job in list(self._jobs.items()):
            if job.finished_at and now - job.finished_at > JOB_KEEP:
                del self._jobs[key]

    # -- destination ---------------------------------------------------------

    def finish_disk(self, uuid, storage, disk_gb, image_path=None,
                    image_format=None):
        """Point a qcow2 overlay at this host's cached image, grow the disk
        to ``disk_gb`` GiB if it is smaller."""
        d = instances.idir(uuid, storage)
        fmt = d.disk_format()
        have = disk.info(str(d.disk), fmt)
        rebased = False
        if fmt == "qcow2" and have.backing_file and image_path and \
                have.backing_file != image_path:
            process.run(["qemu-img", "rebase", "-u", "-f", "qcow2",
                         "-b", validate.absolute_path(image_path, "image"),
                         "-F", image_format, str(d.disk)])
            rebased = True
        size = disk_gb * instances.GIB
        grown = size > have.virtual_size and disk.grow(str(d.disk), size, fmt)
        return {"rebased": rebased, "grown": bool(grown)}

    def register(self, server):
        server.register_group("move", self)


def _send(src_dir, address, dest_dir, dest_base, progress):
    if not os.path.isfile(CONF.compute.migration_ssh_key):
        raise DroverError(f"no host-to-host SSH key at "
                          f"{CONF.compute.migration_ssh_key}")
    out = diskcopy.send_dir(
        src_dir, address, dest_dir, progress=progress,
        ssh_user=CONF.compute.migration_ssh_user,
        identity=CONF.compute.migration_ssh_key,
        known_hosts=CONF.compute.migration_known_hosts,
        receiver_argv=receiver_argv() + ["--root", dest_base])
    return {k: out[k] for k in ("bytes_sent", "bytes_data",
                                "bytes_allocated", "virtual_size",
                                "seconds")}


def _copy_local(d, progress):
    """Copy into ``<uuid>_copying``, then rename it to ``<uuid>``."""
    if d.exists():
        return {"bytes_sent": 0}
    tmp = d.base / (d.uuid + COPYING_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    names = sorted(p.name for p in d.resize_path.iterdir() if p.is_file())
    total = sum(os.stat(d.resize_path / n).st_blocks * 512 for n in names)
    done = 0
    progress(0, total)
    for name in names:
        process.run(["cp", "--sparse=always", "--reflink=auto",
                     "--preserve=mode,timestamps", "--",
                     str(d.resize_path / name), str(tmp / name)])
        done += os.stat(d.resize_path / name).st_blocks * 512
        progress(done, total)
    os.rename(tmp, d.path)
    return {"bytes_sent": 0, "bytes_allocated": total}


def register(server, conn):
    Moves(conn).register(server)
