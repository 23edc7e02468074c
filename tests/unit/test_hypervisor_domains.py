"""Domain primitives against a mocked libvirt: idempotency, shutdown
timeout, error mapping."""
import libvirt
import pytest

from agent.common.errors import Conflict, DroverError, InvalidInput, NotFound
from agent.hypervisor import connection, domains
from agent.hypervisor.connection import Connection

UUID = "0b3e4c8e-1a2b-4c3d-8e9f-0123456789ab"


def libvirt_error(code, message="boom", domain=libvirt.VIR_FROM_QEMU):
    err = libvirt.libvirtError(message)
    err.err = (code, domain, message, 2, None, None, None, 0, 0)
    return err


NO_DOMAIN = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found")
NOT_RUNNING = libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID,
                            "domain is not running")


class FakeConnection:
    """Runs primitives on one mocked virConnect."""

    def __init__(self, virconn):
        self.virconn = virconn

    def call(self, fn, *args):
        return fn(self.virconn, *args)


@pytest.fixture
def dom(mocker):
    d = mocker.Mock(name="dom")
    d.UUIDString.return_value = UUID
    d.name.return_value = "instance-1"
    d.isActive.return_value = 1
    d.isPersistent.return_value = 1
    d.info.return_value = [libvirt.VIR_DOMAIN_RUNNING, 262144, 262144, 2,
                           123]
    return d


@pytest.fixture
def conn(mocker, dom):
    virconn = mocker.Mock(name="virconn")
    virconn.lookupByUUIDString.return_value = dom
    virconn.defineXMLFlags.return_value = dom
    return FakeConnection(virconn)


@pytest.fixture
def clock(mocker):
    """Fake time: sleep() advances monotonic()."""
    now = [1000.0]
    mocker.patch.object(domains.time, "monotonic", side_effect=lambda: now[0])

    def sleep(seconds):
        now[0] += seconds
    return mocker.patch.object(domains.time, "sleep", side_effect=sleep)


def test_define_validates_and_returns_the_uuid(conn):
    assert domains.define(conn, "<domain/>") == UUID
    conn.virconn.defineXMLFlags.assert_called_once_with(
        "<domain/>", libvirt.VIR_DOMAIN_DEFINE_VALIDATE)


def test_define_of_a_name_taken_by_another_uuid_conflicts(conn):
    conn.virconn.defineXMLFlags.side_effect = libvirt_error(
        libvirt.VIR_ERR_OPERATION_FAILED, "operation failed: domain "
        "'instance-1' already exists with uuid 1234")
    with pytest.raises(Conflict, match="already exists"):
        domains.define(conn, "<domain/>")


def test_define_of_invalid_xml_names_the_problem(conn):
    conn.virconn.defineXMLFlags.side_effect = libvirt_error(
        libvirt.VIR_ERR_XML_INVALID_SCHEMA,
        "XML document failed to validate against schema: Unable to "
        "validate doc\nExtra element vcpu in interleave\nInvalid sequence\n")
    with pytest.raises(InvalidInput) as err:
        domains.define(conn, "<domain/>")
    assert str(err.value).endswith(
        "Unable to validate doc: Extra element vcpu in interleave")


def test_start(conn, dom):
    dom.isActive.return_value = 0
    assert domains.start(conn, UUID) is True
    dom.create.assert_called_once()


def test_start_of_a_running_domain_does_nothing(conn, dom):
    assert domains.start(conn, UUID) is False
    dom.create.assert_not_called()


def test_start_failure_is_one_line(conn, dom):
    dom.isActive.return_value = 0
    dom.create.side_effect = libvirt_error(
        libvirt.VIR_ERR_INTERNAL_ERROR, "qemu unexpectedly closed\nmore")
    with pytest.raises(DroverError) as err:
        domains.start(conn, UUID)
    assert str(err.value) == (f"cannot start domain {UUID}: qemu "
                              "unexpectedly closed")


def test_graceful_shutdown(conn, dom, clock):
    dom.isActive.side_effect = [1, 1, 1, 0]
    assert domains.shutdown(conn, UUID, timeout=60) == domains.SHUT_DOWN
    dom.shutdown.assert_called_once()
    dom.destroy.assert_not_called()


def test_shutdown_timeout_destroys(conn, dom, clock):
    assert domains.shutdown(conn, UUID, timeout=25) == domains.DESTROYED
    dom.destroy.assert_called_once()
    # The power button is pressed again every SHUTDOWN_RESEND_INTERVAL.
    assert dom.shutdown.call_count == 3
    slept = sum(c.args[0] for c in clock.call_args_list)
    assert 25 <= slept < 25 + domains.POLL_INTERVAL * 2


def test_shutdown_timeout_defaults_to_the_option(conn, dom, clock):
    domains.shutdown(conn, UUID)
    slept = sum(c.args[0] for c in clock.call_args_list)
    assert 60 <= slept < 61  # [libvirt] shutdown_timeout


def test_shutdown_of_a_stopped_domain(conn, dom, clock):
    dom.isActive.return_value = 0
    assert domains.shutdown(conn, UUID, timeout=5) == domains.ALREADY_OFF
    dom.shutdown.assert_not_called()
    dom.destroy.assert_not_called()


def test_guest_stopping_just_before_destroy_counts_as_shut_down(conn, dom,
                                                                clock):
    dom.destroy.side_effect = NOT_RUNNING
    assert domains.shutdown(conn, UUID, timeout=1) == domains.SHUT_DOWN


def test_transient_guest_vanishing_during_shutdown(conn, dom, clock):
    dom.isActive.side_effect = [1, NO_DOMAIN]
    assert domains.shutdown(conn, UUID, timeout=10) == domains.SHUT_DOWN


def test_destroy(conn, dom):
    assert domains.destroy(conn, UUID) is True
    dom.destroy.assert_called_once_with()


def test_destroy_of_a_stopped_or_missing_domain_is_fine(conn, dom):
    dom.destroy.side_effect = NOT_RUNNING
    assert domains.destroy(conn, UUID) is False
    conn.virconn.lookupByUUIDString.side_effect = NO_DOMAIN
    assert domains.destroy(conn, UUID) is False


def test_destroy_failure_is_raised(conn, dom):
    dom.destroy.side_effect = libvirt_error(
        libvirt.VIR_ERR_SYSTEM_ERROR, "Failed to terminate process 42 with "
        "SIGKILL: Device or resource busy")
    with pytest.raises(DroverError, match="SIGKILL"):
        domains.destroy(conn, UUID)


def test_undefine_removes_nvram_and_managed_save(conn, dom):
    assert domains.undefine(conn, UUID) is True
    flags = dom.undefineFlags.call_args.args[0]
    assert flags & libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    assert flags & libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    assert flags & libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


def test_undefine_of_a_missing_or_transient_domain_is_fine(conn, dom):
    dom.isPersistent.return_value = 0
    assert domains.undefine(conn, UUID) is False
    conn.virconn.lookupByUUIDString.side_effect = NO_DOMAIN
    assert domains.undefine(conn, UUID) is False
    dom.undefineFlags.assert_not_called()


def test_lookup_and_info(conn, dom):
    assert domains.lookup(conn, UUID) is dom
    assert domains.info(conn, UUID) == domains.DomainInfo(
        uuid=UUID, name="instance-1", state="running", vcpus=2,
        memory_mib=256, cpu_time_ns=123, persistent=True)
    # Gone between its lookup and the questions (a migrated guest's
    # source undefines it while its stopped event is handled).
    dom.isPersistent.side_effect = NO_DOMAIN
    with pytest.raises(NotFound, match=UUID):
        domains.info(conn, UUID)
    conn.virconn.lookupByUUIDString.side_effect = NO_DOMAIN
    with pytest.raises(NotFound, match=UUID):
        domains.info(conn, UUID)
    assert domains.exists(conn, UUID) is False


def test_get_xml(conn, dom):
    domains.get_xml(conn, UUID)
    dom.XMLDesc.assert_called_with(0)
    domains.get_xml(conn, UUID, inactive=True)
    dom.XMLDesc.assert_called_with(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_list_names_power_states(conn, mocker):
    def fake(uuid, state):
        d = mocker.Mock()
        d.UUIDString.return_value = uuid
        d.name.return_value = uuid
        d.isPersistent.return_value = 1
        d.info.return_value = [state, 1024, 1024, 1, 0]
        return d
    gone = mocker.Mock()
    gone.info.side_effect = NO_DOMAIN
    conn.virconn.listAllDomains.return_value = [
        fake("a", libvirt.VIR_DOMAIN_RUNNING), gone,
        fake("b", libvirt.VIR_DOMAIN_SHUTOFF),
        fake("c", libvirt.VIR_DOMAIN_PAUSED),
        fake("d", libvirt.VIR_DOMAIN_CRASHED)]
    assert [(i.uuid, i.state) for i in domains.list_domains(conn)] == [
        ("a", "running"), ("b", "shutoff"), ("c", "paused"),
        ("d", "crashed")]


@pytest.mark.parametrize("fn", [domains.start, domains.destroy,
                                domains.undefine, domains.info,
                                domains.lookup, domains.get_xml,
                                domains.shutdown])
def test_bad_uuids_never_reach_libvirt(conn, fn):
    with pytest.raises(InvalidInput):
        fn(conn, "instance-1; reboot")
    conn.virconn.lookupByUUIDString.assert_not_called()


def test_primitives_survive_a_libvirtd_restart(mocker, dom):
    """Through the real Connection: the daemon goes away between two
    calls; the next primitive reconnects and succeeds."""
    mocker.patch.object(connection.time, "sleep")
    old, new = mocker.Mock(name="old"), mocker.Mock(name="new")
    old.isAlive.return_value = new.isAlive.return_value = 1
    old.lookupByUUIDString.side_effect = libvirt_error(
        libvirt.VIR_ERR_INTERNAL_ERROR, "client socket is closed",
        libvirt.VIR_FROM_RPC)
    new.lookupByUUIDString.return_value = dom
    mocker.patch.object(libvirt, "open", side_effect=[old, new])
    dom.isActive.return_value = 0
    assert domains.start(Connection("qemu:///system"), UUID) is True
    dom.create.assert_called_once()


def test_state_names_the_reason(conn, dom):
    dom.state.return_value = [libvirt.VIR_DOMAIN_PAUSED,
                              libvirt.VIR_DOMAIN_PAUSED_MIGRATION]
    assert domains.state(conn, UUID) == ("paused", "migration")
    dom.state.return_value = [libvirt.VIR_DOMAIN_RUNNING,
                              libvirt.VIR_DOMAIN_RUNNING_MIGRATED]
    assert domains.state(conn, UUID) == ("running", "migrated")
    dom.state.return_value = [libvirt.VIR_DOMAIN_SHUTOFF,
                              libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED]
    assert domains.state(conn, UUID) == ("shutoff", "unknown")
    conn.virconn.lookupByUUIDString.side_effect = NO_DOMAIN
    assert domains.state(conn, UUID) is None
