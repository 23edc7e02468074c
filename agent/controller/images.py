"""The controller's image store, and getting an image onto a host.

An image is a file under [controller] image_store_path named by its UUID.
A snapshot of an instance is recorded first ("saving", no file), then
its file either comes from the host over SSH into ``<uuid>.part``,
hashed on the way, its size checked against the host's, and is renamed
into place; or, when the store is shared with the hosts ([controller]
image_store_host_path), the host writes it into the store itself and the
controller checks it arrived there whole.  Then the image becomes
"active": only then may anything rely on it (shelve deletes the
instance's disk only after reading the stored file again).
A host gets a copy (HostManager.upload: SFTP on the agent's SSH
connection) the first time an instance needs it, into a ``.part`` file the
agent checks (size, sha256) and renames into its cache, where it serves as
a backing file.
"""
import hashlib
import os
import pathlib
import shutil
import threading
import uuid as uuidlib

from agent.common import disk
from agent.common.errors import Conflict, DroverError, InvalidInput, NotFound
from agent.conf import CONF

CHUNK = 4 << 20
SAVING, ACTIVE = "saving", "active"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def import_image(store, name, path, disk_format):
    """Copy ``path`` into the image store and record it."""
    src = pathlib.Path(path)
    if not src.is_file():
        raise InvalidInput(f"no image file at {path}")
    found = disk.info(str(src), disk_format)
    if found.backing_file:
        raise InvalidInput(f"{path} has a backing file; flatten it first")
    image_uuid = str(uuidlib.uuid4())
    root = pathlib.Path(CONF.controller.image_store_path)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / image_uuid
    part = dest.with_suffix(".part")
    shutil.copyfile(src, part)
    os.replace(part, dest)
    try:
        return store.create_image(
            name, str(dest), disk_format, virtual_size=found.virtual_size,
            size=dest.stat().st_size, checksum=sha256_file(dest),
            uuid=image_uuid)
    except Exception:
        dest.unlink(missing_ok=True)
        raise


def store_path(image_uuid):
    root = pathlib.Path(CONF.controller.image_store_path)
    root.mkdir(parents=True, exist_ok=True)
    return root / image_uuid


def new_snapshot(store, name, instance):
    """The record of a snapshot of ``instance`` about to be taken."""
    image_uuid = str(uuidlib.uuid4())
    return store.create_image(
        name, str(store_path(image_uuid)), "qcow2", virtual_size=0, size=0,
        uuid=image_uuid, status=SAVING, instance_uuid=instance["uuid"])


def shared_store_dir():
    """The image store as the hosts see it ([controller]
    image_store_host_path), or None: not shared, snapshots come over
    SSH."""
    return CONF.controller.image_store_host_path or None


def receive_snapshot(store, hosts, host, image, made):
    """Copy the snapshot file ``made`` (snapshot.create's answer) from
    ``host`` into the store, hashing it on the way (one pass: SSH
    protects what it carries, the size shows it all came), make the
    image active.  Damaged (size, or the sha256 when the host sent one,
    differ): DroverError, nothing kept.  Already in place and checked (a
    resumed task): kept."""
    dest = pathlib.Path(image["path"])
    if image["status"] == ACTIVE and dest.is_file():
        return image
    part = dest.with_suffix(".part")
    got = hosts.download(host, made["path"], str(part))
    size, digest = got["size"], got["sha256"]
    if size != made["size"] or made["sha256"] not in (None, digest):
        part.unlink(missing_ok=True)
        raise DroverError(f"the snapshot copied from {host} is damaged "
                          f"({size} of {made['size']} bytes"
                          f"{', sha256 bad' if size == made['size'] else ''})")
    os.replace(part, dest)
    return store.update_image(image["uuid"], status=ACTIVE, size=size,
                              checksum=digest,
                              virtual_size=made["virtual_size"])


def adopt_snapshot(store, host, image, made):
    """The snapshot ``made`` that ``host`` wrote straight into the store
    (shared, [controller] image_store_host_path): it must be there under
    the image's own name with the size the host wrote, then the image is
    active with the sha256 the host computed of it (the same file: no
    copy to check; shelve reads it again before it deletes a disk).
    Not there whole: DroverError (the host does not see the store where
    the option says), nothing kept."""
    dest = pathlib.Path(image["path"])
    if image["status"] == ACTIVE and dest.is_file():
        return image
    size = dest.stat().st_size if dest.is_file() else None
    if pathlib.PurePosixPath(made["path"]).name != dest.name or \
            size != made["size"] or not made["sha256"]:
        found = "no such file" if size is None else \
            f"{size} of its {made['size']} bytes"
        raise DroverError(
            f"{host} wrote the snapshot to {made['path']}, but the image "
            f"store has {found} at {dest}: does {host} see the store at "
            f"[controller] image_store_host_path?")
    return store.update_image(image["uuid"], status=ACTIVE, size=size,
                              checksum=made["sha256"],
                              virtual_size=made["virtual_size"])


def verified(image):
    """True if ``image`` is active and its file in the store has its
    recorded sha256 (read again: the check before a disk that holds the
    same data is deleted)."""
    path = pathlib.Path(image["path"])
    return image["status"] == ACTIVE and path.is_file() and \
        path.stat().st_size == image["size"] and \
        sha256_file(path) == image["checksum"]


def discard(store, image_uuid):
    """Remove an image's record and its file (and a partial copy), as an
    undo or once it is no longer needed; gone already: nothing."""
    try:
        image = store.get_image(image_uuid)
    except NotFound:
        return
    store.delete_image(image_uuid)
    path = pathlib.Path(image["path"])
    path.unlink(missing_ok=True)
    path.with_suffix(".part").unlink(missing_ok=True)


def delete_image(store, name):
    """``image delete``: the record and the store's file.  Refused while
    a live instance was built from it or a shelved one is held in it.
    Host caches are not touched: a disk there that uses the image as its
    backing file keeps it (agent.host.image_cache)."""
    image = store.get_image(name)
    if image["status"] == SAVING:
        raise Conflict(f"image {image['name']} is still being saved")
    store.delete_image(name)
    pathlib.Path(image["path"]).unlink(missing_ok=True)


_host_locks = {}
_locks_lock = threading.Lock()


def ensure_on_host(hosts, host, image, progress=lambda msg: None):
    """Make sure ``host`` has ``image`` in its cache; returns its path
    there.  Concurrent boots on one host copy an image once."""
    with _locks_lock:
        lock = _host_locks.setdefault((host, image["uuid"]),
                                      threading.Lock())
    if image.get("status", ACTIVE) != ACTIVE:
        raise Conflict(f"image {image['name']} is {image['status']}")
    with lock:
        status = hosts.call(host, "image.status", uuid=image["uuid"])
        if status["present"]:
            return status["path"]
        progress(f"copying image {image['name']} to {host}")
        hosts.upload(host, image["path"], status["upload_path"])
        return hosts.call(host, "image.commit", uuid=image["uuid"],
                          sha256=image["checksum"], size=image["size"],
                          format=image["format"])["path"]
