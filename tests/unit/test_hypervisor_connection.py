"""The libvirt connection wrapper: reconnects after libvirtd went away."""
import threading
import time

import libvirt
import pytest

from agent.common.errors import DroverError
from agent.conf import CONF
from agent.hypervisor import connection
from agent.hypervisor.connection import Connection, is_connection_lost

URI = "qemu+tcp://198.18.64.11/system"


def libvirt_error(code, domain, message="boom"):
    err = libvirt.libvirtError(message)
    err.err = (code, domain, message, 2, None, None, None, 0, 0)
    return err


LOST = libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                     "Cannot write data: Broken pipe")


@pytest.fixture
def opened(mocker):
    """libvirt.open returning fresh fake connections; no real sleeping."""
    mocker.patch.object(connection.time, "sleep")
    mocker.patch.object(connection, "start_event_loop")
    CONF.set_override("connection_retries", 3, "libvirt")
    conns = []

    def fake_open(uri):
        conn = mocker.Mock(name=f"conn{len(conns)}")
        conn.isAlive.return_value = 1
        conns.append(conn)
        return conn
    mocker.patch.object(libvirt, "open", side_effect=fake_open)
    yield conns
    CONF.clear_override("connection_retries", "libvirt")


@pytest.mark.parametrize("err,lost", [
    (LOST, True),
    (libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC,
                   "client socket is closed"), True),
    (libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_REMOTE),
     True),
    (libvirt_error(libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_NONE),
     True),
    (libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU), False),
    (libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU),
     False),
    (libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID,
                   libvirt.VIR_FROM_DOMAIN), False),
])
def test_which_errors_mean_the_daemon_is_gone(err, lost):
    assert is_connection_lost(err) is lost


def test_opens_once_and_reuses(opened):
    conn = Connection(URI)
    assert conn.call(lambda c: c.getHostname()) is opened[0].getHostname()
    conn.call(lambda c: c.getHostname())
    assert len(opened) == 1
    libvirt.open.assert_called_once_with(URI)


def test_default_uri_is_the_option(opened):
    assert Connection().uri == CONF.libvirt.uri


def test_call_reconnects_after_libvirtd_restart(opened):
    conn = Connection(URI)
    conn.get()
    opened[0].listAllDomains.side_effect = LOST
    result = conn.call(lambda c: c.listAllDomains(0))
    assert len(opened) == 2
    assert result is opened[1].listAllDomains.return_value
    opened[0].close.assert_called_once()
    assert conn.get() is opened[1]


def test_other_errors_are_raised_without_reconnecting(opened):
    conn = Connection(URI)
    err = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU)
    with pytest.raises(libvirt.libvirtError):
        conn.call(lambda c: (_ for _ in ()).throw(err))
    assert len(opened) == 1


def test_dead_connection_is_replaced_before_use(opened):
    conn = Connection(URI)
    first = conn.get()
    first.isAlive.return_value = 0
    assert conn.get() is opened[1]
    first.isAlive.side_effect = LOST
    opened[1].isAlive.side_effect = LOST
    assert conn.get() is opened[2]


def test_open_is_retried_while_libvirtd_starts(opened, mocker):
    real_open = libvirt.open.side_effect
    failures = [LOST, LOST]

    def flaky(uri):
        if failures:
            raise failures.pop()
        return real_open(uri)
    libvirt.open.side_effect = flaky
    CONF.set_override("connection_retry_interval", 0.25, "libvirt")
    try:
        assert Connection(URI).get() is opened[0]
    finally:
        CONF.clear_override("connection_retry_interval", "libvirt")
    assert connection.time.sleep.call_args_list == [mocker.call(0.25)] * 2


def test_gives_up_after_the_retries_with_one_line(opened):
    libvirt.open.side_effect = libvirt_error(
        libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
        "Failed to connect socket: Connection refused")
    with pytest.raises(DroverError) as err:
        Connection(URI).get()
    assert libvirt.open.call_count == 4  # first try + 3 retries
    assert str(err.value) == (f"cannot connect to libvirt at {URI} after 4 "
                              "attempts: Failed to connect socket: "
                              "Connection refused")


def test_lifecycle_callbacks_need_events(opened):
    with pytest.raises(DroverError):
        Connection(URI).register_lifecycle_callback(print)


def _lifecycle_handler(conn):
    """The handler the wrapper registered with libvirt on ``conn``."""
    args = conn.domainEventRegisterAny.call_args.args
    assert args[1] == libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE
    return args[2]


def _delivered(seen, count, timeout=5):
    """The callbacks run in the dispatcher thread: wait for them."""
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return seen


def test_lifecycle_events_reach_every_callback(opened, mocker):
    conn = Connection(URI, events=True)
    connection.start_event_loop.assert_called_once()
    seen, broken = [], mocker.Mock(side_effect=RuntimeError("bug"))
    conn.register_lifecycle_callback(broken)
    conn.register_lifecycle_callback(lambda *a: seen.append(a))
    virconn = conn.get()
    virconn.setKeepAlive.assert_called_once()
    dom = mocker.Mock()
    dom.UUIDString.return_value = "u-1"
    _lifecycle_handler(virconn)(
        virconn, dom, libvirt.VIR_DOMAIN_EVENT_STOPPED,
        libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, None)
    assert _delivered(seen, 1) == [
        ("u-1", "stopped", libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN)]
    broken.assert_called_once()


def test_a_slow_callback_does_not_hold_libvirts_event_thread(opened,
                                                              mocker):
    """A callback that waits (on a libvirt call, say) leaves the event
    thread free; the events still reach the callbacks in order."""
    conn = Connection(URI, events=True)
    release, seen = threading.Event(), []

    def slow(uuid, name, detail):
        release.wait(5)
        seen.append(name)
    conn.register_lifecycle_callback(slow)
    virconn = conn.get()
    handler, dom = _lifecycle_handler(virconn), mocker.Mock()
    started = time.monotonic()
    for event in (libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                  libvirt.VIR_DOMAIN_EVENT_RESUMED):
        handler(virconn, dom, event, 0, None)
    assert time.monotonic() - started < 1
    assert seen == []
    release.set()
    assert _delivered(seen, 2) == ["suspended", "resumed"]


def test_events_are_registered_again_after_a_reconnect(opened, mocker):
    conn = Connection(URI, events=True)
    seen = []
    conn.register_lifecycle_callback(lambda *a: seen.append(a[1]))
    conn.get()
    opened[0].getHostname.side_effect = LOST
    conn.call(lambda c: c.getHostname())
    opened[0].domainEventDeregisterAny.assert_called_once()
    dom = mocker.Mock()
    _lifecycle_handler(opened[1])(opened[1], dom,
                                  libvirt.VIR_DOMAIN_EVENT_STARTED, 0, None)
    assert _delivered(seen, 1) == ["started"]


def test_a_closed_connection_is_reopened_in_the_background(opened, mocker):
    conn = Connection(URI, events=True)
    first = conn.get()
    on_close = first.registerCloseCallback.call_args.args[0]
    mocker.patch.object(connection.threading, "Thread")
    first.isAlive.return_value = 0
    on_close(first, libvirt.VIR_CONNECT_CLOSE_REASON_EOF, None)
    reopen = connection.threading.Thread.call_args.kwargs["target"]
    reopen()
    assert conn.get() is opened[1]


def test_close_does_not_reopen(opened, mocker):
    conn = Connection(URI, events=True)
    first = conn.get()
    on_close = first.registerCloseCallback.call_args.args[0]
    conn.close()
    first.close.assert_called_once()
    mocker.patch.object(connection.threading, "Thread")
    on_close(first, libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT, None)
    connection.threading.Thread.assert_not_called()
