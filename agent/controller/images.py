"""The controller's image store, and getting an image onto a host.

An image is a file under [controller] image_store_path named by its UUID.
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
from agent.common.errors import InvalidInput
from agent.conf import CONF

CHUNK = 4 << 20


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


def delete_image(store, name):
    image = store.get_image(name)
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
    with lock:
        status = hosts.call(host, "image.status", uuid=image["uuid"])
        if status["present"]:
            return status["path"]
        progress(f"copying image {image['name']} to {host}")
        hosts.upload(host, image["path"], status["upload_path"])
        return hosts.call(host, "image.commit", uuid=image["uuid"],
                          sha256=image["checksum"], size=image["size"],
                          format=image["format"])["path"]
