"""The agent's rescue primitives: a fresh overlay beside the instance's
disk, the rescue definition (overlay first and booted, own disk after it,
not booted), the overlay's removal; never while the domain runs from it."""
import uuid as uuidlib
import xml.etree.ElementTree as ET

import pytest

from agent.common.disk import DiskInfo
from agent.common.errors import Conflict, NotFound
from agent.conf import CONF
from agent.host import instances

UUID = str(uuidlib.uuid4())
IMAGE = "/var/lib/drover/images/rescue"


@pytest.fixture
def agent(tmp_path, mocker):
    CONF.set_override("instances_path", str(tmp_path), "agent")
    disk = mocker.patch.object(instances, "disk")
    disk.info.return_value = DiskInfo(IMAGE, "qcow2", 1 << 30, 1 << 20)
    disk.create.side_effect = lambda path, **kw: open(path, "w").close()
    doms = mocker.patch.object(instances, "domains")
    doms.state.return_value = ("shutoff", "unknown")
    d = instances.idir(UUID, "local")
    d.create()
    d.disk.write_text("own")
    d.set_disk_format("qcow2")
    d.write_xml("<domain>original</domain>")
    yield instances.Instances(conn=None), d, doms, disk
    CONF.clear_override("instances_path", "agent")


def spec():
    return {"uuid": UUID, "name": "vm", "vcpus": 1, "memory_mib": 256,
            "disk_gb": 1, "mac": "52:54:00:00:00:01", "storage": "local",
            "flavor": "small", "metadata": {"ip": "198.18.0.9/24"}}


def test_rescue_disk_is_a_fresh_overlay_of_the_image(agent):
    inst, d, _, disk = agent
    d.file("disk.rescue").write_text("old rescue")
    out = inst.rescue_disk(UUID, "local", IMAGE, "qcow2")
    assert out["path"] == str(d.file("disk.rescue"))
    assert d.file("disk.rescue").read_text() == ""        # made again
    disk.create.assert_called_once_with(
        str(d.file("disk.rescue")), size=1 << 30, fmt="qcow2",
        backing_file=IMAGE, backing_format="qcow2")
    assert d.disk_format("disk.rescue") == "qcow2"
    assert d.disk.read_text() == "own"


def test_rescue_define_boots_the_overlay_and_attaches_the_own_disk(agent):
    inst, d, doms, _ = agent
    inst.rescue_disk(UUID, "local", IMAGE, "qcow2")
    inst.rescue_define(spec())
    root = ET.fromstring(doms.define.call_args[0][1])
    disks = [(x.find("source").get("file"), x.find("target").get("dev"),
              x.find("boot") is not None)
             for x in root.findall("./devices/disk")]
    assert disks == [(str(d.file("disk.rescue")), "vda", True),
                     (str(d.disk), "vdb", False)]
    assert root.find("uuid").text == UUID
    assert root.find("./devices/interface/mac").get("address") == \
        "52:54:00:00:00:01"
    # The original definition is kept for unrescue.
    assert d.libvirt_xml.read_text() == "<domain>original</domain>"


def test_overlay_kept_while_the_domain_runs_from_it(agent):
    inst, d, doms, _ = agent
    inst.rescue_disk(UUID, "local", IMAGE, "qcow2")
    doms.state.return_value = ("running", "booted")
    doms.get_xml.return_value = f"<source file='{d.file('disk.rescue')}'/>"
    with pytest.raises(Conflict):
        inst.rescue_cleanup(UUID, "local")
    with pytest.raises(Conflict):
        inst.rescue_disk(UUID, "local", IMAGE, "qcow2")
    assert d.file("disk.rescue").exists()
    # Running from its own disk (after unrescue): the overlay may go.
    doms.get_xml.return_value = f"<source file='{d.disk}'/>"
    assert inst.rescue_cleanup(UUID, "local") == {"removed": True}
    assert inst.rescue_cleanup(UUID, "local") == {"removed": False}
    assert d.disk.read_text() == "own"
    assert not d.file("disk.rescue").exists()
    assert d.disk_format() == "qcow2"
    with pytest.raises(NotFound):
        d.disk_format("disk.rescue")
