"""Images cached on this host as backing files: ``<image_cache_path>/<uuid>``.

The controller uploads into ``<uuid>.part``; ``commit`` checks size and
sha256 before renaming it into place, so a cut-off copy never becomes a
backing file.
"""
import hashlib
import os
import pathlib

from agent.common import disk, validate
from agent.common.errors import DroverError
from agent.conf import CONF


def _path(uuid):
    root = pathlib.Path(CONF.agent.image_cache_path)
    root.mkdir(parents=True, exist_ok=True)
    return root / validate.uuid(uuid)


def status(uuid):
    path = _path(uuid)
    return {"present": path.is_file(), "path": str(path),
            "upload_path": str(path.with_suffix(".part"))}


def commit(uuid, sha256, size, format):
    path = _path(uuid)
    if path.is_file():
        return {"path": str(path)}
    part = path.with_suffix(".part")
    try:
        got_size = part.stat().st_size
    except FileNotFoundError:
        raise DroverError(f"image {uuid}: nothing was uploaded") from None
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    sum_ok = digest.hexdigest() == sha256
    if got_size != size or not sum_ok:
        part.unlink(missing_ok=True)
        raise DroverError(f"image {uuid}: the copy is damaged "
                          f"({got_size} of {size} bytes, checksum "
                          f"{'ok' if sum_ok else 'bad'})")
    disk.info(str(part), format)        # a readable image of that format
    os.chmod(part, 0o644)               # the QEMU user reads backing files
    os.replace(part, path)
    return {"path": str(path)}
