"""Instance directories: layout, idempotent create/remove, resize renames."""
import json
import stat

import pytest

from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.conf import CONF
from agent.hypervisor.instance_dir import InstanceDir

UUID = "0b3e4c8e-1a2b-4c3d-8e9f-0123456789ab"


def test_layout(tmp_path):
    d = InstanceDir(UUID, tmp_path)
    assert d.path == tmp_path / UUID
    assert d.disk == tmp_path / UUID / "disk"
    assert d.disk_info == tmp_path / UUID / "disk.info"
    assert d.libvirt_xml == tmp_path / UUID / "libvirt.xml"
    assert d.console_log == tmp_path / UUID / "console.log"
    assert d.resize_path == tmp_path / f"{UUID}_resize"
    assert d.file("disk.rescue") == tmp_path / UUID / "disk.rescue"


def test_default_base_is_instances_path(tmp_path):
    CONF.set_override("instances_path", str(tmp_path), "agent")
    try:
        assert InstanceDir(UUID).path == tmp_path / UUID
    finally:
        CONF.clear_override("instances_path", "agent")


def test_upper_case_uuid_is_normalised(tmp_path):
    assert InstanceDir(UUID.upper(), tmp_path).path.name == UUID


@pytest.mark.parametrize("bad", ["../etc", "", "x", f"{UUID}/..",
                                 f"{UUID}_resize", "a" * 36])
def test_only_uuids_name_directories(tmp_path, bad):
    with pytest.raises(InvalidInput):
        InstanceDir(bad, tmp_path)


@pytest.mark.parametrize("bad", ["../disk", "a/b", "", ".hidden"])
def test_file_names_stay_inside(tmp_path, bad):
    with pytest.raises(ValueError):
        InstanceDir(UUID, tmp_path).file(bad)


def test_create_and_remove_are_idempotent(tmp_path):
    d = InstanceDir(UUID, tmp_path / "instances")
    assert d.create() is True
    assert d.exists()
    assert stat.S_IMODE(d.path.stat().st_mode) == 0o755
    d.disk.write_bytes(b"data")
    assert d.create() is False
    assert d.disk.read_bytes() == b"data"
    assert d.remove() is True
    assert not d.exists()
    assert d.remove() is False


def test_disk_formats_are_recorded(tmp_path):
    d = InstanceDir(UUID, tmp_path)
    d.create()
    with pytest.raises(NotFound):
        d.disk_format()
    d.set_disk_format("qcow2")
    d.set_disk_format("raw", "disk.eph0")
    assert d.disk_format() == "qcow2"
    assert d.disk_format("disk.eph0") == "raw"
    assert json.loads(d.disk_info.read_text()) == {"disk": "qcow2",
                                                   "disk.eph0": "raw"}
    d.set_disk_format("raw")
    assert d.disk_format() == "raw"
    with pytest.raises(InvalidInput):
        d.set_disk_format("vmdk")
    d.disk_info.write_text('{"disk": "qcow2 -o backing_file=/etc"}')
    with pytest.raises(InvalidInput):
        d.disk_format()


def test_write_xml(tmp_path):
    d = InstanceDir(UUID, tmp_path)
    d.create()
    d.write_xml("<domain/>")
    assert d.libvirt_xml.read_text() == "<domain/>"
    assert sorted(p.name for p in d.path.iterdir()) == ["libvirt.xml"]


def test_resize_rename_and_back(tmp_path):
    d = InstanceDir(UUID, tmp_path)
    d.create()
    d.disk.write_bytes(b"data")
    assert d.move_to_resize() is True
    assert not d.exists()
    assert (d.resize_path / "disk").read_bytes() == b"data"
    assert d.move_to_resize() is False
    assert d.restore_from_resize() is True
    assert d.disk.read_bytes() == b"data"
    assert d.restore_from_resize() is False


def test_resize_rename_refuses_to_clobber(tmp_path):
    d = InstanceDir(UUID, tmp_path)
    with pytest.raises(NotFound):
        d.move_to_resize()
    d.create()
    d.resize_path.mkdir()
    with pytest.raises(Conflict):
        d.move_to_resize()
    with pytest.raises(Conflict):
        d.restore_from_resize()
    assert d.remove_resize() is True
    assert d.remove_resize() is False
    assert d.exists()
