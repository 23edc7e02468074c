"""An instance's directory: ``<instances_path>/<uuid>/``.

It holds ``disk``, ``disk.info`` (JSON: file name -> disk format, read
instead of probing the image), ``libvirt.xml`` and ``console.log``.  Cold
migration and resize rename it to the sibling ``<uuid>_resize`` and back.
Every operation can run twice.
"""
import json
import os
import pathlib
import shutil

from agent.common.errors import Conflict, NotFound
from agent.conf import CONF
from agent.common import disk as diskmod
from agent.common import validate

RESIZE_SUFFIX = "_resize"


class InstanceDir:
    """Paths and files of one instance under ``base`` ([agent]
    instances_path by default)."""

    def __init__(self, uuid, base=None):
        self.uuid = validate.uuid(uuid)
        self.base = pathlib.Path(validate.absolute_path(
            os.fspath(base or CONF.agent.instances_path), "instances path"))
        self.path = self.base / self.uuid
        self.resize_path = self.base / (self.uuid + RESIZE_SUFFIX)

    def file(self, name):
        """A file in the directory; ``name`` is one of drover's own."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a file name: {name!r}")
        return self.path / name

    @property
    def disk(self):
        return self.file("disk")

    @property
    def disk_info(self):
        return self.file("disk.info")

    @property
    def libvirt_xml(self):
        return self.file("libvirt.xml")

    @property
    def console_log(self):
        return self.file("console.log")

    def exists(self):
        return self.path.is_dir()

    def create(self):
        """Make the directory (and the instances path); False if it was
        there.  World-searchable: the QEMU user opens the disks in it."""
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir(mode=0o755)
        except FileExistsError:
            return False
        os.chmod(self.path, 0o755)
        return True

    def remove(self):
        """Delete the directory and everything in it; False if absent."""
        return _rmtree(self.path)

    def remove_resize(self):
        """Delete the ``<uuid>_resize`` copy (confirmed resize)."""
        return _rmtree(self.resize_path)

    def move_to_resize(self):
        """Rename ``<uuid>`` to ``<uuid>_resize``; False if done already."""
        return _rename(self.path, self.resize_path)

    def restore_from_resize(self):
        """Rename ``<uuid>_resize`` back to ``<uuid>`` (reverted resize);
        False if done already."""
        return _rename(self.resize_path, self.path)

    def set_disk_format(self, fmt, name="disk"):
        """Record the format of disk ``name`` in ``disk.info``."""
        formats = self._formats()
        formats[self.file(name).name] = validate.choice(
            fmt, diskmod.FORMATS, "disk format")
        _write_atomically(self.disk_info, json.dumps(formats, indent=1,
                                                     sort_keys=True) + "\n")

    def drop_disk_format(self, name):
        """Forget disk ``name`` in ``disk.info`` (its file removed)."""
        formats = self._formats()
        if formats.pop(self.file(name).name, None) is not None:
            _write_atomically(self.disk_info, json.dumps(
                formats, indent=1, sort_keys=True) + "\n")

    def disk_format(self, name="disk"):
        """The recorded format of disk ``name``."""
        try:
            fmt = self._formats()[self.file(name).name]
        except KeyError:
            raise NotFound(f"no format recorded for {self.file(name)} in "
                           f"{self.disk_info}") from None
        return validate.choice(fmt, diskmod.FORMATS, "disk format")

    def write_xml(self, xml):
        """Keep the domain XML the instance was defined with."""
        _write_atomically(self.libvirt_xml, xml)

    def _formats(self):
        try:
            return json.loads(self.disk_info.read_text())
        except FileNotFoundError:
            return {}


def _rmtree(path):
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return False
    return True


def _rename(src, dst):
    if dst.exists():
        if src.exists():
            raise Conflict(f"both {src} and {dst} exist; refusing to "
                           "replace one with the other")
        return False
    if not src.exists():
        raise NotFound(f"neither {src} nor {dst} exists")
    os.rename(src, dst)
    return True


def _write_atomically(path, text):
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
