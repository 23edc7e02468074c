"""Snapshot to image, shelve and unshelve as workflows over a real store
and the simulated fleet: what the user sees (the image and its checked
file, the instance's states, capacity), and that no failure deletes the
disk holding the only copy of the data."""
import hashlib
import os

import pytest

from agent.common.errors import Conflict, DroverError, InvalidInput
from agent.conf import CONF
from agent.controller import images, states
from agent.transport.errors import HostUnreachable
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    CONF.set_override("image_store_path", str(tmp_path / "store"),
                      "controller")
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    yield lab
    lab.close()
    CONF.clear_override("image_store_path", "controller")


def booted(lab, name="vm", host="h1"):
    assert lab.boot(name, host=host)["state"] == "done"
    return lab.store.get_instance(name)


def methods(lab, since=0):
    return [m for _, m in lab.fleet.calls[since:]]


def image_file(lab, name):
    with open(lab.store.get_image(name)["path"]) as f:
        return f.read()


def held(lab, host):
    return [a for a in lab.store.list_allocations() if a["host"] == host]


# -- snapshot ----------------------------------------------------------------

def test_snapshot_of_a_running_guest_makes_a_checked_active_image(lab):
    inst = booted(lab)
    before = len(lab.fleet.calls)
    task = lab.op("snapshot", "vm", image_name="vm-snap")
    assert task["state"] == "done", task["error"]
    image = lab.store.get_image("vm-snap")
    assert image["status"] == "active" and image["instance_uuid"] == \
        inst["uuid"]
    data = f"data-{inst['uuid']}"
    assert image_file(lab, "vm-snap") == data
    assert image["checksum"] == hashlib.sha256(data.encode()).hexdigest()
    assert image["size"] == len(data)
    # The guest kept running, nothing of the copy is left on the host.
    assert methods(lab, before) == ["snapshot.create", "snapshot.remove"]
    assert lab.fleet.host("h1").snapshots == {}
    assert lab.domains() == [("vm", "h1", "running")]
    after = lab.store.get_instance("vm")
    assert after["status"] == "ACTIVE" and after["task_state"] is None
    assert lab.judge() == []


def test_the_image_boots_a_new_instance_elsewhere(lab):
    booted(lab)
    lab.op("snapshot", "vm", image_name="vm-snap")
    task = lab._run(lambda: lab.svc.admission.create(
        "copy", "small", "vm-snap", host="h2"))
    assert task["state"] == "done", task["error"]
    assert lab.fleet.host("h2").image_data[
        lab.store.get_image("vm-snap")["uuid"]] == \
        f"data-{lab.uuid('vm')}"


def test_a_failed_copy_leaves_no_image_and_the_guest_as_it_was(lab):
    booted(lab)
    lab.fleet.fail("h1", "snapshot.create", DroverError("backup job failed"))
    task = lab.op("snapshot", "vm", image_name="vm-snap")
    assert task["state"] == "failed" and "backup job" in task["error"]
    assert lab.store.list_images()[0]["name"] == "img"
    assert len(lab.store.list_images()) == 1
    assert os.listdir(CONF.controller.image_store_path) == []
    inst = lab.store.get_instance("vm")
    assert inst["status"] == "ACTIVE" and "backup job" in inst["error"]
    assert lab.domains() == [("vm", "h1", "running")]


def test_a_cut_copy_is_refused_and_removed_everywhere(lab, mocker):
    booted(lab)
    real = lab.svc.hosts.download

    def cut(host, remote, local):
        got = real(host, remote, local)
        with open(local, "r+") as f:
            f.truncate(got["size"] - 1)
        return dict(got, size=got["size"] - 1)
    mocker.patch.object(lab.svc.hosts, "download", cut)
    task = lab.op("snapshot", "vm", image_name="vm-snap")
    assert task["state"] == "failed" and "damaged" in task["error"]
    assert len(lab.store.list_images()) == 1
    assert os.listdir(CONF.controller.image_store_path) == []
    assert lab.fleet.host("h1").snapshots == {}      # undo removed it


@pytest.fixture
def shared(lab):
    """The image store shared with the hosts, which see it where the
    controller does."""
    CONF.set_override("image_store_host_path",
                      CONF.controller.image_store_path, "controller")
    os.makedirs(CONF.controller.image_store_path, exist_ok=True)
    yield lab
    CONF.clear_override("image_store_host_path", "controller")


def test_with_a_shared_store_the_host_writes_the_image_into_it(shared,
                                                              mocker):
    lab = shared
    inst = booted(lab)
    download = mocker.patch.object(lab.svc.hosts, "download",
                                   side_effect=AssertionError("copied"))
    before = len(lab.fleet.calls)
    task = lab.op("snapshot", "vm", image_name="vm-snap")
    assert task["state"] == "done", task["error"]
    image = lab.store.get_image("vm-snap")
    data = f"data-{inst['uuid']}"
    assert image["status"] == "active" and image_file(lab, "vm-snap") == data
    assert image["checksum"] == hashlib.sha256(data.encode()).hexdigest()
    assert image["size"] == len(data) and images.verified(image)
    # No copy over SSH, nothing on the host to remove, nothing else left.
    assert not download.called
    assert methods(lab, before) == ["snapshot.create"]
    assert lab.fleet.host("h1").snapshots == {}
    assert os.listdir(CONF.controller.image_store_path) == [image["uuid"]]
    assert lab.domains() == [("vm", "h1", "running")]
    assert lab.judge() == []


def test_a_host_that_does_not_see_the_shared_store_fails_cleanly(
        shared, tmp_path):
    lab = shared
    booted(lab)
    elsewhere = tmp_path / "not-the-store"
    elsewhere.mkdir()
    CONF.set_override("image_store_host_path", str(elsewhere), "controller")
    task = lab.op("snapshot", "vm", image_name="vm-snap")
    assert task["state"] == "failed"
    assert "image_store_host_path" in task["error"]
    assert [i["name"] for i in lab.store.list_images()] == ["img"]
    assert os.listdir(elsewhere) == []                  # undo removed it
    assert os.listdir(CONF.controller.image_store_path) == []
    inst = lab.store.get_instance("vm")
    assert inst["status"] == "ACTIVE" and inst["task_state"] is None
    assert lab.domains() == [("vm", "h1", "running")]


def test_shelve_through_a_shared_store_deletes_the_disk_after_the_check(
        shared, mocker):
    lab = shared
    inst = booted(lab)
    check = mocker.patch.object(images, "verified", return_value=False)
    task = lab.op("shelve", "vm")
    assert task["state"] == "failed" and "disk is kept" in task["error"]
    assert lab.directories() == [("local/h1", "vm")]    # the disk stays
    assert os.listdir(CONF.controller.image_store_path) == []
    assert lab.judge(had_data={inst["uuid"]}) == []
    check.side_effect = None
    mocker.stopall()
    task = lab.op("shelve", "vm")
    assert task["state"] == "done", task["error"]
    image = lab.store.get_image("vm-shelved")
    assert images.verified(image)
    assert image_file(lab, "vm-shelved") == f"data-{inst['uuid']}"
    assert lab.domains() == [] and lab.directories() == []
    assert lab.judge(had_data={inst["uuid"]}) == []


def test_snapshot_refusals_are_one_line_before_anything_is_made(lab):
    booted(lab)
    lab.op("snapshot", "vm", image_name="vm-snap")
    with pytest.raises(Conflict, match="already exists"):
        lab.svc.admission.submit("image-create", "vm", image_name="vm-snap")
    with pytest.raises(InvalidInput):
        lab.svc.admission.submit("image-create", "vm", image_name="")
    lab.store.update_instance(lab.uuid("vm"), vm_state=states.RESCUED)
    with pytest.raises(Conflict, match="vm_state rescued"):
        lab.svc.admission.submit("image-create", "vm", image_name="other")
    with pytest.raises(Conflict, match="vm_state rescued"):
        lab.svc.admission.submit("shelve", "vm")


def test_a_saving_image_boots_nothing_and_cannot_be_deleted(lab):
    inst = booted(lab)
    saving = images.new_snapshot(lab.store, "half", inst)
    with pytest.raises(InvalidInput, match="saving"):
        lab.svc.admission.create("x", "small", "half")
    with pytest.raises(Conflict, match="being saved"):
        images.delete_image(lab.store, saving["uuid"])


def test_an_image_in_use_is_not_deleted(lab):
    booted(lab)
    with pytest.raises(Conflict, match="used by 1"):
        images.delete_image(lab.store, "img")


# -- shelve ----------------------------------------------------------------

def test_shelve_frees_the_host_and_keeps_the_data_in_a_checked_image(lab):
    inst = booted(lab)
    task = lab.op("shelve", "vm")
    assert task["state"] == "done", task["error"]
    after = lab.store.get_instance("vm")
    assert after["status"] == "SHELVED_OFFLOADED" and after["host"] is None
    assert (after["mac"], after["ip"]) == (inst["mac"], inst["ip"])
    image = lab.store.get_image(after["shelved_image_uuid"])
    assert image["name"] == "vm-shelved" and images.verified(image)
    assert image_file(lab, "vm-shelved") == f"data-{inst['uuid']}"
    assert lab.domains() == [] and lab.directories() == []
    assert held(lab, "h1") == []
    # Nova's order: a clean shutdown before the copy.
    calls = methods(lab)
    assert calls.index("instance.stop") < calls.index("snapshot.create") \
        < calls.index("instance.undefine") < calls.index("instance.cleanup")
    assert lab.judge(had_data={inst["uuid"]}) == []


@pytest.mark.parametrize("fail", ["snapshot.create", "instance.undefine"])
def test_shelve_failing_before_the_image_is_safe_keeps_the_disk(lab, fail):
    inst = booted(lab)
    lab.fleet.fail("h1", fail, DroverError(f"{fail} broke"))
    task = lab.op("shelve", "vm")
    assert task["state"] == "failed"
    assert lab.directories() == [("local/h1", "vm")]     # the disk stays
    assert lab.domains() == [("vm", "h1", "running")]   # started again
    assert lab.store.get_instance("vm")["status"] == "ACTIVE"
    assert len(held(lab, "h1")) == 1
    assert [i["name"] for i in lab.store.list_images()] == ["img"]
    assert lab.judge(had_data={inst["uuid"]}) == []


def test_shelve_never_deletes_the_disk_when_the_stored_file_is_bad(lab,
                                                                  mocker):
    inst = booted(lab)
    mocker.patch.object(images, "verified", return_value=False)
    task = lab.op("shelve", "vm")
    assert task["state"] == "failed" and "disk is kept" in task["error"]
    assert "instance.cleanup" not in methods(lab)
    assert lab.directories() == [("local/h1", "vm")]
    assert lab.judge(had_data={inst["uuid"]}) == []


def test_shelve_with_the_host_lost_after_the_commit_records_a_cleanup(lab):
    inst = booted(lab)
    lab.fleet.fail("h1", "instance.cleanup", HostUnreachable("h1 gone"))
    task = lab.op("shelve", "vm")
    assert task["state"] == "done", task["error"]
    assert lab.store.get_instance("vm")["status"] == "SHELVED_OFFLOADED"
    assert [c["instance_uuid"] for c in lab.store.list_cleanups("h1")] == \
        [inst["uuid"]]


def test_delete_of_a_shelved_instance_removes_its_image(lab):
    booted(lab)
    lab.op("shelve", "vm")
    path = lab.store.get_image("vm-shelved")["path"]
    assert lab.op("delete", "vm")["state"] == "done"
    assert [i["name"] for i in lab.store.list_images()] == ["img"]
    assert not os.path.exists(path)


def test_the_image_of_a_shelved_instance_cannot_be_deleted(lab):
    booted(lab)
    lab.op("shelve", "vm")
    with pytest.raises(Conflict, match="shelved"):
        images.delete_image(lab.store, "vm-shelved")


# -- unshelve ----------------------------------------------------------------

def test_unshelve_elsewhere_same_identity_data_and_image_removed(lab):
    inst = booted(lab)
    lab.op("shelve", "vm")
    path = lab.store.get_image("vm-shelved")["path"]
    task = lab.op("unshelve", "vm", host="h2")
    assert task["state"] == "done", task["error"]
    after = lab.store.get_instance("vm")
    assert after["status"] == "ACTIVE" and after["host"] == "h2"
    assert {k: after[k] for k in ("uuid", "name", "mac", "ip")} == \
        {k: inst[k] for k in ("uuid", "name", "mac", "ip")}
    assert after["flavor"]["name"] == "small"
    assert after["shelved_image_uuid"] is None
    assert lab.domains() == [("vm", "h2", "running")]
    disk = lab.fleet.world.dirs(lab.fleet.host("h2"), "local")[inst["uuid"]]
    assert disk.data == f"data-{inst['uuid']}" and disk.backing is None
    assert [i["name"] for i in lab.store.list_images()] == ["img"]
    assert not os.path.exists(path)
    assert len(held(lab, "h2")) == 1
    assert lab.judge(had_data={inst["uuid"]}) == []


def test_unshelve_through_the_scheduler(lab):
    booted(lab)
    lab.op("shelve", "vm")
    lab.store.disable_host("h1", "maintenance")
    assert lab.op("unshelve", "vm")["state"] == "done"
    assert lab.store.get_instance("vm")["host"] == "h2"


def test_a_failed_unshelve_stays_shelved_with_its_image(lab):
    inst = booted(lab)
    lab.op("shelve", "vm")
    lab.fleet.fail("h2", "instance.start", DroverError("no start"))
    task = lab.op("unshelve", "vm", host="h2")
    assert task["state"] == "failed"
    after = lab.store.get_instance("vm")
    assert after["status"] == "SHELVED_OFFLOADED" and after["host"] is None
    assert "no start" in after["error"]
    assert images.verified(lab.store.get_image("vm-shelved"))
    assert lab.domains() == [] and lab.directories() == []
    assert lab.store.list_allocations() == []
    assert lab.judge(had_data={inst["uuid"]}) == []
    # And it can be unshelved once the host is fixed.
    assert lab.op("unshelve", "vm", host="h2")["state"] == "done"


def test_unshelve_refused_unless_shelved(lab):
    booted(lab)
    with pytest.raises(Conflict, match="vm_state active"):
        lab.svc.admission.submit("unshelve", "vm")
