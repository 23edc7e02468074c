"""AgentClient against a real RpcServer, with SSH replaced by a UNIX socket."""
import os
import random
import socket
import threading
import time

import pytest
from rpc_helpers import sock_dir  # noqa: F401

from agent.common.errors import CommandFailed, Conflict, NotFound
from agent.common.rpc.methods import Method, MethodMismatch, table
from agent.common.rpc.server import RpcServer
from agent.transport.errors import AgentError, CallTimeout, HostUnreachable
from agent.transport.ssh import AgentClient


class FakeChannel:
    """The part of a paramiko Channel AgentClient uses, on a UNIX socket."""

    def __init__(self, path, broken=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.broken = broken
        self.closed = False
        self.eof_received = False
        self.command = None

    def exec_command(self, command):
        self.command = command

    def sendall(self, data):
        if self.closed or self.broken:
            raise OSError("Socket is closed")
        self.sock.sendall(data)

    def recv(self, size):
        data = self.sock.recv(size)
        self.eof_received = not data
        return data

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def exit_status_ready(self):
        return True

    def recv_exit_status(self):
        return -1


class FakeConnections:
    """Stands in for SSHConnections: every session is a new socket."""

    def __init__(self, path):
        self.path = path
        self.channels = []
        self.holders = 0
        self.break_next = False

    def acquire(self, address, port):
        self.holders += 1

    def release(self, address, port):
        self.holders -= 1

    def transport(self, host, address, port, fresh=False):
        return self

    def open_session(self, timeout=None):
        channel = FakeChannel(self.path, broken=self.break_next)
        self.break_next = False
        self.channels.append(channel)
        return channel


def _raise(exc):
    raise exc


METHODS = table(
    Method("echo", ("value",)),
    Method("sleep_echo", ("value", "delay")),
    Method("quick", timeout=0.1, doc="never answers in time"),
    Method("kind", ("method",)),
    *(Method(name) for name in ("missing", "busy", "qemu_img", "crash")),
)


@pytest.fixture
def server(sock_dir):  # noqa: F811
    rpc = RpcServer(os.path.join(sock_dir, "agent.sock"), methods=METHODS)
    rpc.register("echo", lambda value: value)
    rpc.register("sleep_echo",
                 lambda value, delay: (time.sleep(delay), value)[1])
    rpc.register("missing", lambda: _raise(NotFound("no instance u1")))
    rpc.register("busy", lambda: _raise(Conflict("instance u1 is busy")))
    rpc.register("qemu_img", lambda: _raise(
        CommandFailed(["qemu-img"], 1, "cannot open")))
    rpc.register("crash", lambda: _raise(KeyError("disk")))
    rpc.register("quick", lambda: time.sleep(0.3))
    rpc.start()
    yield rpc
    rpc.stop()


@pytest.fixture
def connections(server):
    return FakeConnections(server.path)


@pytest.fixture
def client(connections):
    agent = AgentClient("host1", "198.18.200.9", port=22,
                        relay_command="drover-agent relay",
                        connections=connections, methods=METHODS)
    yield agent
    agent.close()


def test_call_runs_the_relay_and_returns_the_result(client, connections):
    assert client.call("echo", value=[1, "two"]) == [1, "two"]
    assert [c.command for c in connections.channels] == ["drover-agent relay"]


def test_a_parameter_may_be_called_method(server, client):
    server.register("kind", lambda method: method)
    assert client.call("kind", method="live") == "live"


@pytest.mark.parametrize("method, cls, message", [
    ("missing", NotFound, "no instance u1"),
    ("busy", Conflict, "instance u1 is busy"),
    ("qemu_img", CommandFailed, "qemu-img failed (exit 1): cannot open"),
    ("crash", AgentError, "KeyError: 'disk'"),
])
def test_remote_errors_are_raised_as_their_class(client, method, cls,
                                                 message):
    with pytest.raises(cls) as err:
        client.call(method)
    assert type(err.value) is cls and str(err.value) == message
    assert err.value.host == "host1"


def test_concurrent_calls_are_matched_to_their_callers(client,
                                                       connections):
    results = {}

    def worker(n):
        results[n] = [client.call("sleep_echo", value=[n, i],
                                  delay=random.random() / 100)
                      for i in range(20)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: [[n, i] for i in range(20)] for n in range(10)}
    assert len(connections.channels) == 1      # all on one channel


def test_a_quick_call_is_not_held_up_by_a_slow_one(client):
    slow = threading.Thread(target=client.call, args=("sleep_echo",),
                            kwargs={"value": 1, "delay": 5})
    slow.start()
    time.sleep(0.1)
    assert client.call("echo", value=2) == 2
    assert slow.is_alive()          # the quick reply came first
    slow.join()


def test_timeout_leaves_the_channel_usable(client):
    with pytest.raises(CallTimeout, match="host1: no reply to sleep_echo"):
        client.call("sleep_echo", timeout=0.1, value="late", delay=0.3)
    time.sleep(0.4)     # the late reply arrives and is ignored
    assert client.call("echo", value="next") == "next"


def test_lost_channel_fails_calls_in_flight_and_next_call_reconnects(
        client, connections):
    failure = []

    def slow_call():
        try:
            client.call("sleep_echo", value=1, delay=2)
        except HostUnreachable as err:
            failure.append(err)

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.2)
    connections.channels[0].sock.shutdown(socket.SHUT_RDWR)  # link drops
    thread.join(5)
    assert len(failure) == 1 and "host1" in str(failure[0])
    assert client.call("echo", value="again") == "again"
    assert len(connections.channels) == 2


def test_a_request_that_could_not_be_sent_is_sent_once_more(client,
                                                            connections):
    connections.break_next = True
    assert client.call("echo", value=5) == 5
    assert len(connections.channels) == 2


def test_subscribers_get_events_in_order_and_link_changes(
        client, server, connections):
    events = []
    client.subscribe(lambda event, data: events.append((event, data)))
    for n in range(50):
        server.publish("migration.progress", {"n": n})
    deadline = time.monotonic() + 5
    while len(events) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == [("migration.progress", {"n": n}) for n in range(50)]
    connections.channels[0].sock.shutdown(socket.SHUT_RDWR)
    while len(events) < 51 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events[50][0] == "agent.disconnected"
    client.call("echo", value=1)            # reopens and resubscribes
    server.publish("domain.lifecycle", {"state": "running"})
    while len(events) < 53 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events[51:] == [("agent.reconnected", {"host": "host1"}),
                           ("domain.lifecycle", {"state": "running"})]


def test_a_failing_callback_does_not_stop_the_others(client, server):
    got = threading.Event()
    client.subscribe(lambda event, data: 1 / 0)
    client.subscribe(lambda event, data: got.set())
    server.publish("x", {})
    assert got.wait(5)


def test_close_releases_the_connection_once(connections):
    agent = AgentClient("host1", "198.18.200.9", connections=connections,
                        methods=METHODS)
    agent.call("echo", value=1)
    assert connections.holders == 1
    agent.close()
    agent.close()
    assert connections.holders == 0
    assert connections.channels[0].closed
    with pytest.raises(HostUnreachable, match="closed"):
        agent.call("echo", value=1)


@pytest.mark.parametrize("method, params, message", [
    ("echoo", {"value": 1}, "no RPC method 'echoo'"),
    ("echo", {}, r"echo\(value\): missing value"),
    ("echo", {"value": 1, "extra": 2}, "unknown extra"),
])
def test_a_call_the_table_does_not_have_is_never_sent(
        client, connections, method, params, message):
    with pytest.raises(MethodMismatch, match=message):
        client.call(method, **params)
    assert connections.channels == []       # nothing went out


def test_the_default_timeout_is_the_methods_own(client):
    with pytest.raises(CallTimeout, match="no reply to quick within 0.1 s"):
        client.call("quick")


def test_the_agents_table_is_the_default(connections):
    with AgentClient("host1", "198.18.200.9",
                     connections=connections) as agent:
        with pytest.raises(MethodMismatch, match="echo"):
            agent.call("echo", value=1)
        with pytest.raises(MethodMismatch, match="missing storage"):
            agent.call("instance.cleanup", uuid="u1")
    assert connections.channels == []
