"""A libvirt connection that survives a libvirtd restart.

``Connection.call(fn)`` runs ``fn(virConnect)``; when libvirtd went away
underneath it, the connection is opened again (with [libvirt]
connection_retries) and ``fn`` runs once more, so ``fn`` must be
idempotent (drover's primitives are).  With ``events=True`` libvirt's
default event loop runs in a daemon thread, lifecycle callbacks are
delivered, a keepalive notices a dead daemon, and a closed connection is
reopened in the background so that events keep coming.  The callbacks run
in a thread of their own, in the order of the events: libvirt's event
thread must never wait on a libvirt call (one that asks about a domain
whose migration libvirt is finishing waits up to 200 ms for its lock, and
every other connection's events, keepalives included, would wait too).
"""
import contextlib
import logging
import queue
import threading
import time

import libvirt

from agent.common.errors import DroverError
from agent.conf import CONF

LOG = logging.getLogger(__name__)

LIFECYCLE_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3

_event_loop_lock = threading.Lock()
_event_loop_thread = None


def start_event_loop():
    """Register libvirt's default event loop and run it in a daemon thread.

    Once per process, before the connections that want events are opened.
    """
    global _event_loop_thread
    with _event_loop_lock:
        if _event_loop_thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()
        _event_loop_thread = threading.Thread(
            target=_run_event_loop, name="libvirt-events", daemon=True)
        _event_loop_thread.start()


def event_loop_running():
    """True once start_event_loop has run in this process."""
    return _event_loop_thread is not None


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def is_connection_lost(err):
    """True if ``err`` (a libvirtError) means libvirtd is gone, not that the
    call failed."""
    if err.get_error_code() == libvirt.VIR_ERR_INVALID_CONN:
        return True
    return (err.get_error_domain() in (libvirt.VIR_FROM_RPC,
                                       libvirt.VIR_FROM_REMOTE)
            and err.get_error_code() in (libvirt.VIR_ERR_SYSTEM_ERROR,
                                         libvirt.VIR_ERR_INTERNAL_ERROR))


class Connection:
    """The libvirt connection to ``uri`` ([libvirt] uri by default)."""

    def __init__(self, uri=None, *, events=False):
        self.uri = uri or CONF.libvirt.uri
        self.events = events
        self._conn = None
        self._lock = threading.RLock()
        self._callbacks = []
        self._events = queue.SimpleQueue()
        self._dispatcher = None
        self._closed = False
        self._event_ids = {}
        # libvirt prints every error to stderr unless a handler takes it;
        # the bindings raise them as libvirtError anyway.
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        if events:
            start_event_loop()

    def get(self):
        """The open virConnect, opened again if libvirtd went away."""
        with self._lock:
            if self._conn is not None and not _alive(self._conn):
                self._drop(self._conn)
            if self._conn is None:
                self._closed = False
                self._conn = self._open()
            return self._conn

    def call(self, fn, *args, **kwargs):
        """``fn(virConnect, *args, **kwargs)``, run again on a new
        connection if the daemon was lost during the call."""
        conn = self.get()
        try:
            return fn(conn, *args, **kwargs)
        except libvirt.libvirtError as err:
            if not is_connection_lost(err):
                raise
            LOG.warning("lost libvirt connection to %s (%s); reconnecting",
                        self.uri, err.get_error_message())
            self._drop(conn)
        return fn(self.get(), *args, **kwargs)

    def register_lifecycle_callback(self, fn):
        """Call ``fn(uuid, event, detail)`` on every domain lifecycle event;
        ``event`` is a name from LIFECYCLE_EVENTS (started, stopped, ...),
        ``detail`` libvirt's VIR_DOMAIN_EVENT_*_* number."""
        if not self.events:
            raise DroverError("lifecycle callbacks need Connection("
                              "events=True)")
        with self._lock:
            self._callbacks.append(fn)
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="libvirt-callbacks",
                    daemon=True)
                self._dispatcher.start()

    def close(self):
        """Close the connection; no reconnection follows."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._drop(self._conn)

    def _open(self):
        retries = CONF.libvirt.connection_retries
        for attempt in range(retries + 1):
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as err:
                last = err.get_error_message()
                if attempt < retries:
                    time.sleep(CONF.libvirt.connection_retry_interval)
                continue
            if self.events:
                self._watch(conn)
            return conn
        raise DroverError(f"cannot connect to libvirt at {self.uri} after "
                          f"{retries + 1} attempts: {last}")

    def _watch(self, conn):
        conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        conn.registerCloseCallback(self._on_close, None)
        self._event_ids[conn] = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle,
            None)

    def _drop(self, conn):
        with self._lock:
            if self._conn is conn:
                self._conn = None
            event_id = self._event_ids.pop(conn, None)
        if event_id is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(event_id)
            with contextlib.suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    def _on_lifecycle(self, _conn, dom, event, detail, _opaque):
        """In libvirt's event thread: queued for the dispatcher."""
        self._events.put((dom.UUIDString(),
                          LIFECYCLE_EVENTS.get(event, str(event)), detail))

    def _dispatch(self):
        while True:
            uuid, name, detail = self._events.get()
            for fn in list(self._callbacks):
                try:
                    fn(uuid, name, detail)
                except Exception:
                    LOG.exception("lifecycle callback %r failed", fn)

    def _on_close(self, conn, reason, _opaque):
        LOG.warning("libvirt connection to %s closed (reason %s)", self.uri,
                    reason)
        if not self._closed:
            threading.Thread(target=self._reopen, name="libvirt-reconnect",
                             daemon=True).start()

    def _reopen(self):
        try:
            self.get()
        except DroverError as err:
            LOG.error("%s", err)


def _alive(conn):
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def _ignore_libvirt_error(_ctx, _err):
    pass
