"""The agent's snapshot primitives: which copy a domain state gets, the
backup job's definition, and an offline snapshot made with the real
qemu-img: standalone, the data of the chain, found again, removed."""
import shutil

import pytest

from agent.common import disk
from agent.common.errors import DroverError, InvalidInput
from agent.conf import CONF
from agent.host import snapshots
from agent.hypervisor import backup

UUID = "0b7e5f9e-3c1a-4d0e-9a57-6b2f3c1d2e4f"
IMAGE = "9d3c1a2b-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
XML = f"""<domain><devices>
<disk type='file' device='disk'><source file='/x/{UUID}/disk'/>
<target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><source file='/x/other'/>
<target dev='vdb' bus='virtio'/></disk></devices></domain>"""


@pytest.mark.parametrize("state, how", [
    ("running", "live"), ("paused", "live"), ("blocked", "live"),
    ("shutoff", "offline"), ("crashed", "offline"), (None, "offline")])
def test_a_running_guest_is_copied_live_a_stopped_one_offline(state, how):
    assert snapshots.method_for(state) == how


def test_the_disk_target_is_the_instances_disk():
    assert snapshots.disk_target(XML, f"/x/{UUID}/disk") == "vda"
    assert snapshots.disk_target(XML, "/x/other") == "vdb"


def test_the_backup_job_writes_one_new_qcow2():
    xml = backup.backup_xml("vda", "/x/snap.qcow2")
    assert "<target file='/x/snap.qcow2'/>" in xml
    assert "<driver type='qcow2'/>" in xml and "name='vda'" in xml
    with pytest.raises(ValueError):
        backup.backup_xml("vda", "/x/a'b")
    with pytest.raises(ValueError):
        backup.backup_xml("vda/../", "/x/s")


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="no qemu-img")
def test_an_offline_snapshot_is_standalone_and_removed(tmp_path, mocker):
    CONF.set_override("instances_path", str(tmp_path), "agent")
    try:
        base = tmp_path / "base.qcow2"
        disk.create(str(base), size=8 << 20, fmt="qcow2")
        d = tmp_path / UUID
        d.mkdir()
        disk.create(str(d / "disk"), size=16 << 20, fmt="qcow2",
                    backing_file=str(base), backing_format="qcow2")
        (d / "disk.info").write_text('{"disk": "qcow2"}')
        mocker.patch.object(snapshots.domains, "state",
                            return_value=("shutoff", "unknown"))
        agent = snapshots.Snapshots(conn=None)
        made = agent.create(UUID, "local", IMAGE)
        assert made["method"] == "offline"
        info = disk.info(made["path"], "qcow2")
        assert info.backing_file is None and info.virtual_size == 16 << 20
        assert made["virtual_size"] == 16 << 20
        assert made["sha256"] == snapshots.sha256_file(made["path"])
        again = agent.create(UUID, "local", IMAGE)   # found, not redone
        assert again["method"] is None and again["sha256"] == made["sha256"]
        assert agent.remove(UUID, "local", IMAGE) == {"removed": True}
        assert agent.remove(UUID, "local", IMAGE) == {"removed": False}
        assert sorted(p.name for p in d.iterdir()) == ["disk", "disk.info"]
        assert disk.info(str(d / "disk"), "qcow2").backing_file == str(base)
    finally:
        CONF.clear_override("instances_path", "agent")


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="no qemu-img")
def test_a_snapshot_into_a_shared_store_leaves_nothing_beside_the_disk(
        tmp_path, mocker):
    CONF.set_override("instances_path", str(tmp_path / "inst"), "agent")
    try:
        d = tmp_path / "inst" / UUID
        d.mkdir(parents=True)
        disk.create(str(d / "disk"), size=16 << 20, fmt="qcow2")
        (d / "disk.info").write_text('{"disk": "qcow2"}')
        store = tmp_path / "store"
        store.mkdir()
        mocker.patch.object(snapshots.domains, "state",
                            return_value=("shutoff", "unknown"))
        agent = snapshots.Snapshots(conn=None)
        made = agent.create(UUID, "local", IMAGE, dest_dir=str(store))
        # Under the image's own name in the store, hashed once, there.
        assert made["path"] == str(store / IMAGE)
        assert made["sha256"] == snapshots.sha256_file(made["path"])
        assert disk.info(made["path"], "qcow2").virtual_size == 16 << 20
        assert made["virtual_size"] == 16 << 20
        with pytest.raises(DroverError, match="not a qcow2"):
            snapshots.qcow2_virtual_size(str(d / "disk.info"))
        assert sorted(p.name for p in d.iterdir()) == ["disk", "disk.info"]
        assert sorted(p.name for p in store.iterdir()) == [IMAGE]
        # Not hashed when the controller hashes what it receives.
        plain = agent.create(UUID, "local", IMAGE, checksum=False)
        assert plain["sha256"] is None and plain["method"] == "offline"
        assert agent.remove(UUID, "local", IMAGE, dest_dir=str(store)) == \
            {"removed": True}
        assert list(store.iterdir()) == []
        with pytest.raises(InvalidInput):
            agent.create(UUID, "local", IMAGE, dest_dir="store/../x")
    finally:
        CONF.clear_override("instances_path", "agent")
