"""The host manager's power-state sync: libvirt's word is recorded, but a
poll's old news never undoes what a task did after the poll asked."""
import pytest

from agent.controller import hosts as hostsmod
from agent.controller import states
from agent.controller.db import Store, upgrade

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40}


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    st.upsert_host("h1", address="198.18.0.11", facts=FACTS)
    st.create_flavor("small", 1, 256, 1)
    st.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24)
    yield st
    st.close()


def _active(store):
    inst = store.create_instance("vm", "small", "img")
    return store.update_instance(inst["uuid"], host="h1",
                                 vm_state=states.ACTIVE, task_state=None,
                                 power_state=states.RUNNING)


def _poll(store, mocker, inst, state, asked):
    manager = hostsmod.HostManager(store)
    mocker.patch.object(manager, "call", return_value={
        **FACTS, "domains": [{"uuid": inst["uuid"], "state": state}]})
    mocker.patch.object(manager, "_subscribe")
    mocker.patch.object(hostsmod, "_now", return_value=asked)
    manager.poll_host("h1")
    return store.get_instance(inst["uuid"])


def test_a_guest_that_powered_itself_off_becomes_shutoff(store, mocker):
    inst = _active(store)
    after = _poll(store, mocker, inst, "shutoff", "2999-01-01T00:00:00Z")
    assert after["status"] == "SHUTOFF"
    assert after["power_state"] == states.SHUTDOWN


def test_a_poll_asked_before_the_last_change_is_ignored(store, mocker):
    inst = _active(store)        # e.g. a boot that ended during the poll
    after = _poll(store, mocker, inst, "shutoff", "2000-01-01T00:00:00Z")
    assert after["status"] == "ACTIVE"
    assert after["power_state"] == states.RUNNING


def test_instances_in_a_task_are_left_to_it(store, mocker):
    inst = _active(store)
    from agent.controller.ops import OPERATIONS
    store.admit_task("stop", {}, inst["uuid"], rule=OPERATIONS["stop"].rule)
    after = _poll(store, mocker, inst, "shutoff", "2999-01-01T00:00:00Z")
    assert after["vm_state"] == states.ACTIVE
    assert after["task_state"] == states.POWERING_OFF


def test_a_stopped_guest_seen_running_is_active_again(store, mocker):
    inst = _active(store)
    store.update_instance(inst["uuid"], vm_state=states.STOPPED,
                          power_state=states.SHUTDOWN)
    after = _poll(store, mocker, inst, "running", "2999-01-01T00:00:00Z")
    assert after["status"] == "ACTIVE"
    assert after["power_state"] == states.RUNNING


def test_an_image_copy_to_a_host_that_dies_names_the_host(store, mocker):
    """paramiko's SFTP raises a bare EOFError when the host goes away."""
    from agent.transport.errors import HostUnreachable
    store.upsert_host("h9", "198.18.0.9", facts={"vcpus": 1,
                                                 "memory_mb": 512,
                                                 "disk_gb": 1})
    manager = hostsmod.HostManager(store)
    mocker.patch.object(manager, "client")
    mocker.patch.object(hostsmod.CONNECTIONS, "transport")
    sftp = mocker.patch.object(hostsmod.paramiko.SFTPClient,
                               "from_transport").return_value
    sftp.put.side_effect = EOFError()
    with pytest.raises(HostUnreachable,
                       match="copying an image to h9 failed: EOFError"):
        manager.upload("h9", "/images/img", "/cache/img.part")
