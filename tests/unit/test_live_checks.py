"""Live-migration pre-checks and the block/shared choice."""
import pytest

from agent.common.errors import Conflict, InvalidInput
from agent.controller import live_checks, states
from agent.host.live import disk_targets


def _host(name, **kw):
    values = dict(name=name, state="up", enabled=True, disabled_reason=None,
                  hypervisor_type="QEMU", cpu_model="qemu64",
                  libvirt_version="9.0.0", qemu_version="7.2.0")
    values.update(kw)
    return values


def _inst(**kw):
    values = dict(name="vm1", vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, host="h1")
    values.update(kw)
    return values


@pytest.mark.parametrize("vm_state,power", [
    (states.ACTIVE, states.RUNNING), (states.PAUSED, states.POWER_PAUSED)])
def test_running_or_paused_instances_may_go(vm_state, power):
    live_checks.check_instance(_inst(vm_state=vm_state, power_state=power))


@pytest.mark.parametrize("vm_state,power", [
    (states.STOPPED, states.SHUTDOWN), (states.ACTIVE, states.SHUTDOWN),
    (states.ERROR, states.RUNNING)])
def test_stopped_or_broken_instances_are_refused(vm_state, power):
    with pytest.raises(Conflict, match="not running or paused"):
        live_checks.check_instance(_inst(vm_state=vm_state,
                                         power_state=power))


def test_compatible_hosts_pass():
    live_checks.check_hosts(_host("h1"), _host("h2", qemu_version="8.0.0",
                                               libvirt_version="9.0.1"))


@pytest.mark.parametrize("dest,match", [
    (_host("h1"), "own host"),
    (_host("h2", state="down"), "down"),
    (_host("h2", enabled=False, disabled_reason="maint"), r"disabled \(maint"),
    (_host("h2", hypervisor_type="Xen"), "hypervisor types differ"),
    (_host("h2", cpu_model="Skylake-Server"), "CPU models differ"),
    (_host("h2", libvirt_version="8.10.0"), "libvirt version 8.10.0 is older"),
    (_host("h2", qemu_version="7.1.9"), "qemu version 7.1.9 is older"),
])
def test_incompatible_destinations_are_refused(dest, match):
    with pytest.raises(InvalidInput, match=match):
        live_checks.check_hosts(_host("h1"), dest)


def test_versions_compare_numerically():
    assert live_checks.version_tuple("10.0.0") > \
        live_checks.version_tuple("9.10.0")
    assert live_checks.version_tuple("7.2.0+dfsg") == (7, 2, 0)


def test_block_migration_is_chosen_without_shared_storage():
    assert live_checks.choose_block(None, shared=False) is True
    assert live_checks.choose_block(None, shared=True) is False
    assert live_checks.choose_block(True, shared=False) is True


def test_block_migration_on_shared_storage_is_refused():
    with pytest.raises(InvalidInput, match="storage is shared"):
        live_checks.choose_block(True, shared=True)


def test_shared_migration_without_shared_storage_is_refused():
    with pytest.raises(InvalidInput, match="do not share"):
        live_checks.choose_block(False, shared=False)


def test_disk_targets_are_the_file_backed_disks():
    xml = """<domain><devices>
      <disk type='file' device='disk'><source file='/i/disk'/>
        <target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
      <disk type='file' device='disk'><source file='/i/disk2'/>
        <target dev='vdb' bus='virtio'/></disk>
    </devices></domain>"""
    assert disk_targets(xml) == ["vda", "vdb"]
