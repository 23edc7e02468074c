"""The controller's SSH link to each host's agent (paramiko).

Host keys are checked strictly against [ssh] known_hosts: an unknown or
changed key is refused, never learnt.  One authenticated Transport per
host address is shared by every client of that host (``CONNECTIONS``)
and replaced when it dies; each AgentClient runs the agent relay on an
exec channel of its own and multiplexes calls on it by id.
"""
import base64
import hashlib
import itertools
import logging
import queue
import socket
import threading
import time

import paramiko

from agent.common.errors import DroverError, one_line
from agent.common.rpc import methods as rpc_methods
from agent.common.rpc import protocol as proto
from agent.conf import CONF
from agent.transport.errors import (AgentError, CallTimeout, HostKeyRejected,
                                    HostUnreachable)

LOG = logging.getLogger(__name__)

# Lost connections paramiko reports in several ways.
_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException)


def fingerprint(key):
    """OpenSSH-style fingerprint: 'ssh-ed25519 SHA256:...'."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return (f"{key.get_name()} SHA256:"
            f"{base64.b64encode(digest).decode().rstrip('=')}")


class _RefuseUnknown(paramiko.RejectPolicy):
    """Refuse a host key missing from known_hosts, naming its fingerprint."""

    def __init__(self, host, known_hosts):
        self.host = host
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        raise HostKeyRejected(
            f"host key of {self.host} ({hostname}) is not in "
            f"{self.known_hosts}: refusing {fingerprint(key)}")


def _load_private_key(path):
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise DroverError(f"SSH private key {path} is encrypted; drover "
                          "needs a key without a passphrase") from None
    except (OSError, paramiko.SSHException, ValueError) as err:
        raise DroverError(f"cannot read SSH private key {path}: "
                          f"{one_line(err)}") from None


def _open_socket(host, address, port):
    try:
        sock = socket.create_connection((address, port),
                                        timeout=CONF.ssh.connect_timeout)
    except OSError as err:
        raise HostUnreachable(f"cannot connect to {host} ({address}:{port}): "
                              f"{err.strerror or err}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Unacknowledged data (keepalives included) for this long kills the
    # connection, so a dead host is noticed without waiting for TCP's
    # default of about 15 minutes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                    int(CONF.ssh.dead_peer_timeout * 1000))
    return sock


def connect(host, address, port):
    """Log in to ``address``:``port`` and return the SSHClient."""
    pkey = _load_private_key(CONF.ssh.private_key)
    known_hosts = CONF.ssh.known_hosts
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(known_hosts)
    except OSError as err:
        raise HostKeyRejected(f"cannot check the host key of {host}: "
                              f"{known_hosts}: {err.strerror}") from None
    client.set_missing_host_key_policy(_RefuseUnknown(host, known_hosts))
    sock = _open_socket(host, address, port)
    timeout = CONF.ssh.connect_timeout
    try:
        client.connect(address, port=port, username=CONF.ssh.user,
                       pkey=pkey, sock=sock, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False)
    except paramiko.BadHostKeyException as err:
        client.close()
        raise HostKeyRejected(
            f"host key of {host} ({address}:{port}) does not match "
            f"{known_hosts}: expected {fingerprint(err.expected_key)}, got "
            f"{fingerprint(err.key)}; refusing to connect") from None
    except paramiko.AuthenticationException:
        client.close()
        raise HostUnreachable(
            f"{host} ({address}:{port}) refused the key "
            f"{CONF.ssh.private_key} for user {CONF.ssh.user}") from None
    except DroverError:
        client.close()
        raise
    except _LINK_ERRORS as err:
        client.close()
        raise HostUnreachable(f"SSH to {host} ({address}:{port}) failed: "
                              f"{one_line(err)}"
                              ) from None
    client.get_transport().set_keepalive(CONF.ssh.keepalive_interval)
    return client


class SSHConnections:
    """One live SSH Transport per (address, port), shared and refcounted."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients = {}      # key -> SSHClient
        self._users = {}        # key -> number of holders
        self._connecting = {}   # key -> lock serialising (re)connects

    def acquire(self, address, port):
        with self._lock:
            key = (address, port)
            self._users[key] = self._users.get(key, 0) + 1
            self._connecting.setdefault(key, threading.Lock())

    def release(self, address, port):
        """Drop one holder; the last one closes the connection."""
        key = (address, port)
        with self._lock:
            self._users[key] -= 1
            if self._users[key]:
                return
            del self._users[key]
            del self._connecting[key]
            client = self._clients.pop(key, None)
        if client is not None:
            client.close()

    def transport(self, host, address, port, *, fresh=False):
        """A live authenticated Transport to the host, connecting if needed.

        ``fresh``: drop the current one even if it looks alive.
        """
        key = (address, port)
        with self._lock:
            connecting = self._connecting[key]
        with connecting:
            with self._lock:
                client = self._clients.get(key)
            if client is not None:
                transport = client.get_transport()
                if not fresh and transport is not None and \
                        transport.is_active():
                    return transport
                client.close()
            client = connect(host, address, port)
            with self._lock:
                self._clients[key] = client
            return client.get_transport()

    def close_all(self):
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


CONNECTIONS = SSHConnections()


class _Waiter:
    """One call in flight: the channel it went out on, and its outcome."""

    def __init__(self, channel):
        self.channel = channel
        self.done = threading.Event()
        self.result = None
        self.error = None

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self.done.set()


class AgentClient:
    """RPC client of one host's agent, over SSH and the agent relay.

    ``call`` is thread-safe; calls from many threads share one channel.
    Callbacks given to ``subscribe`` get ``(event, data)`` for every agent
    notification, in order, on a thread of their own; they also get
    "agent.disconnected" ({"host", "reason"}) when the channel is lost and
    "agent.reconnected" ({"host"}) once the next call has reopened it (events
    in between are lost).  Calls are checked against ``methods``, the
    agent's method table (agent.common.rpc.methods) by default.
    """

    def __init__(self, host, address, port=None, relay_command=None,
                 connections=CONNECTIONS, methods=rpc_methods.AGENT):
        self.host = host
        self.methods = methods
        self.address = address
        self.port = port or CONF.ssh.port
        self.relay_command = relay_command or CONF.ssh.relay_command
        self._connections = connections
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending = {}
        self._channel = None
        self._callbacks = []
        self._events = None
        self._dispatcher = None
        self._closed = False
        self._opened = False    # a channel was opened before
        connections.acquire(self.address, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, /, timeout=None, **params):
        """Run ``method(**params)`` on the agent and return its result.

        Raises the agent's error as its agent.common.errors class,
        AgentError for an unexpected agent failure, HostUnreachable when
        the host cannot be reached (CallTimeout after ``timeout`` seconds,
        default the method's in the table, else [ssh] rpc_timeout), and
        MethodMismatch, sending nothing, for a method or parameters the
        table does not have.

        A request that could not be sent whole is tried once more on a new
        connection: the agent never runs a line it did not get whole.  One
        that may have reached the agent is not resent here; only an
        idempotent method (Method.idempotent) could be, since the first run
        may still be going on.
        """
        spec = rpc_methods.check_call(self.methods, method, params)
        if timeout is None:
            timeout = CONF.ssh.rpc_timeout if spec.timeout is None \
                else spec.timeout
        call_id = next(self._ids)
        line = proto.encode({"id": call_id, "method": method,
                             "params": params})
        for attempt in (1, 2):
            channel = self._ensure_channel()
            waiter = _Waiter(channel)
            with self._lock:
                self._pending[call_id] = waiter
            try:
                with self._send_lock:
                    channel.sendall(line)
                break
            except _LINK_ERRORS as err:
                # A line never sent whole is never run: safe to resend.
                self._channel_lost(channel, f"connection to {self.host} "
                                   f"lost: {one_line(err)}")
                if attempt == 2:
                    raise waiter.error from None
        if not waiter.done.wait(timeout):
            with self._lock:
                self._pending.pop(call_id, None)
            raise CallTimeout(f"{self.host}: no reply to {method} within "
                              f"{timeout:g} s")
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def subscribe(self, callback):
        """Have ``callback(event, data)`` called for agent notifications."""
        with self._lock:
            self._callbacks.append(callback)
            if self._dispatcher is None:
                self._events = queue.Queue()
                self._dispatcher = threading.Thread(
                    target=self._dispatch_events, args=(self._events,),
                    name=f"agent-events-{self.host}", daemon=True)
                self._dispatcher.start()
        self.call("subscribe")

    def close(self):
        """Close this client's channel (the shared connection if last)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel, self._channel = self._channel, None
            events, dispatcher = self._events, self._dispatcher
        if channel is not None:
            channel.close()
            self._channel_lost(channel, f"{self.host}: client closed")
        if events is not None:
            events.put(None)
            if dispatcher is not threading.current_thread():
                dispatcher.join()
        self._connections.release(self.address, self.port)

    # -- channel ----------------------------------------------------------

    def _ensure_channel(self):
        """The open channel, or a new one if there is none or it ended."""
        while True:
            with self._lock:
                if self._closed:
                    raise HostUnreachable(
                        f"{self.host}: agent client is closed")
                channel = self._channel
                if channel is None:
                    channel = self._channel = self._open_channel()
                    resubscribe = self._opened and bool(self._callbacks)
                    self._opened = True
                    break
                if not channel.closed and not channel.eof_received:
                    return channel
            # Ended, and its reader has not said so yet.
            self._channel_lost(channel, f"connection to {self.host} closed")
        threading.Thread(target=self._read, args=(channel,), daemon=True,
                         name=f"agent-reader-{self.host}").start()
        if resubscribe:
            try:
                with self._send_lock:
                    channel.sendall(proto.encode({"id": next(self._ids),
                                                  "method": "subscribe"}))
            except _LINK_ERRORS:
                pass    # the reader reports the lost channel
            self._events.put(("agent.reconnected", {"host": self.host}))
        return channel

    def _open_channel(self):
        """Run the relay on a new exec channel (one retry on a new link)."""
        for fresh in (False, True):
            transport = self._connections.transport(
                self.host, self.address, self.port, fresh=fresh)
            try:
                channel = transport.open_session(
                    timeout=CONF.ssh.connect_timeout)
                channel.exec_command(self.relay_command)
                return channel
            except _LINK_ERRORS as err:
                reason = one_line(err)
        raise HostUnreachable(f"{self.host}: cannot start the agent relay: "
                              f"{reason}")

    def _read(self, channel):
        buf = bytearray()
        reason = None
        try:
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                buf += data
                while (end := buf.find(b"\n")) >= 0:
                    line = bytes(buf[:end])
                    del buf[:end + 1]
                    self._received(line)
        except _LINK_ERRORS as err:
            reason = one_line(err)
        self._channel_lost(channel, self._loss_reason(channel, reason))

    def _loss_reason(self, channel, reason):
        if reason:
            return f"connection to {self.host} lost: {reason}"
        deadline = time.monotonic() + 2
        while not channel.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        status = channel.recv_exit_status() \
            if channel.exit_status_ready() else -1
        if status == 0:
            return f"{self.host}: the agent closed the connection"
        if status > 0:
            stderr = b""
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(4096)
            lines = stderr.decode(errors="replace").strip().splitlines()
            return (f"{self.host}: the agent relay exited (status {status})"
                    + (f": {lines[-1].strip()}" if lines else ""))
        return f"connection to {self.host} closed"

    def _received(self, line):
        try:
            message = proto.decode(line)
        except proto.ProtocolError as err:
            LOG.warning("%s: ignoring a bad line from the agent: %s",
                        self.host, err)
            return
        if "event" in message:
            if self._events is not None:
                self._events.put((message["event"], message.get("data")))
            return
        call_id = message.get("id")
        with self._lock:
            waiter = self._pending.pop(call_id, None) \
                if isinstance(call_id, int) else None
        if waiter is None:
            return      # its caller gave up, or a re-subscription
        if "error" in message:
            error = proto.error_from_body(message["error"], AgentError)
            error.host = self.host
            waiter.finish(error=error)
        else:
            waiter.finish(result=message.get("result"))

    def _channel_lost(self, channel, reason):
        """Fail the calls that went out on ``channel``."""
        with self._lock:
            lost = [cid for cid, w in self._pending.items()
                    if w.channel is channel]
            waiters = [self._pending.pop(cid) for cid in lost]
            current = self._channel is channel
            if current:
                self._channel = None
            notify = current and self._events is not None and \
                not self._closed
        channel.close()
        for waiter in waiters:
            waiter.finish(error=HostUnreachable(reason))
        if notify:
            self._events.put(("agent.disconnected",
                              {"host": self.host, "reason": reason}))

    def _dispatch_events(self, events):
        while (item := events.get()) is not None:
            event, data = item
            for callback in list(self._callbacks):
                try:
                    callback(event, data)
                except Exception:   # a subscriber's bug must not stop others
                    LOG.exception("%s: event callback failed on %s",
                                  self.host, event)
