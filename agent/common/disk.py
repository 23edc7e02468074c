"""Disk images through qemu-img.

Formats are always passed explicitly (``-f``) where an image's content is
read, so that a raw guest disk holding a qcow2 header is never taken for a
qcow2 image.  New files are written beside their destination and renamed
into place, so a crash leaves the old file or the new one, never half.
"""
import contextlib
import dataclasses
import json
import os

from agent.common import process
from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.common import validate

FORMATS = frozenset({"qcow2", "raw"})


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    path: str
    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None = None
    backing_format: str | None = None


@dataclasses.dataclass(frozen=True)
class CheckResult:
    corruptions: int
    leaks: int

    @property
    def ok(self):
        """No corruption (leaked clusters only waste space)."""
        return self.corruptions == 0


def info(path, fmt=None):
    """DiskInfo of ``path``; its format is probed only if ``fmt`` is None.

    Works on disks in use by a running guest (``--force-share``).
    """
    path = _path(path)
    if not os.path.exists(path):
        raise NotFound(f"no disk image at {path}")
    argv = ["qemu-img", "info", "--output=json", "--force-share"]
    if fmt is not None:
        argv += ["-f", _format(fmt)]
    data = json.loads(process.run(argv + [path]))
    return DiskInfo(
        path=path, format=data["format"],
        virtual_size=data["virtual-size"],
        actual_size=data.get("actual-size", 0),
        backing_file=data.get("full-backing-filename")
        or data.get("backing-filename"),
        backing_format=data.get("backing-filename-format"))


def create(path, size=None, fmt="qcow2", backing_file=None,
           backing_format=None):
    """Create an image of ``size`` bytes (default: the backing file's).

    A qcow2 image may have a backing file (an absolute path) of
    ``backing_format``.  An existing image with the same format, size and
    backing file is left alone; a different one is a Conflict.
    """
    path, fmt = _path(path), _format(fmt)
    if backing_file is None:
        if size is None:
            raise InvalidInput("a disk without a backing file needs a size")
    else:
        if fmt != "qcow2":
            raise InvalidInput("only qcow2 disks can have a backing file")
        backing_file = _path(backing_file)
        backing_format = _format(backing_format or "")
    if size is not None:
        size = _size(size)
    if os.path.exists(path):
        return _same_or_conflict(path, fmt, size, backing_file)
    argv = ["qemu-img", "create", "-q", "-f", fmt]
    if backing_file:
        argv += ["-b", backing_file, "-F", backing_format]
    with _replacing(path) as tmp:
        process.run(argv + [tmp] + ([str(size)] if size is not None else []))
    return info(path, fmt)


def convert(src, dst, src_format, dst_format):
    """Write ``src`` as a ``dst_format`` image at ``dst`` (which may be
    ``src``).  Zeroes stay holes; a backing chain is flattened."""
    src, dst = _path(src), _path(dst)
    argv = ["qemu-img", "convert", "-q", "-f", _format(src_format),
            "-O", _format(dst_format), src]
    if not os.path.exists(src):
        raise NotFound(f"no disk image at {src}")
    with _replacing(dst) as tmp:
        process.run(argv + [tmp])
    return info(dst, dst_format)


def grow(path, size, fmt):
    """Make the disk ``size`` bytes; True if it grew, False if it had that
    size.  Shrinking is refused (it would cut the guest's file system)."""
    size = _size(size)
    current = info(path, fmt).virtual_size
    if size < current:
        raise InvalidInput(f"refusing to shrink disk {path} from {current} "
                           f"to {size} bytes")
    if size == current:
        return False
    process.run(["qemu-img", "resize", "-q", "-f", _format(fmt),
                 _path(path), str(size)])
    return True


def check(path):
    """Consistency check of a qcow2 image."""
    path = _path(path)
    if not os.path.exists(path):
        raise NotFound(f"no disk image at {path}")
    argv = ["qemu-img", "check", "-f", "qcow2", "--output=json", path]
    out = process.run(argv, check=False)
    try:
        data = json.loads(out)
    except ValueError:
        # No report: the check could not run; say why.
        process.run(argv)
        raise
    return CheckResult(corruptions=data.get("corruptions", 0),
                       leaks=data.get("leaks", 0))


def _same_or_conflict(path, fmt, size, backing_file):
    have = info(path, fmt)
    if have.format != fmt or have.backing_file != backing_file or \
            size not in (None, have.virtual_size):
        backed = f" backed by {backing_file}" if backing_file else ""
        raise Conflict(f"{path} exists and is not the requested {fmt} disk "
                       f"of {size or 'any'} bytes{backed}")
    return have


@contextlib.contextmanager
def _replacing(path):
    """A temporary name beside ``path``, renamed to it once written."""
    tmp = path + ".part"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _path(path):
    return validate.absolute_path(os.fspath(path), "disk path")


def _format(fmt):
    return validate.choice(fmt, FORMATS, "disk format")


def _size(size):
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise InvalidInput(f"disk size must be a positive number of bytes, "
                           f"not {size!r}")
    return size
