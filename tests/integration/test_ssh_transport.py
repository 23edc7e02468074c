"""AgentClient through a real OpenSSH sshd, the relay and an RpcServer.

sshd runs as root in a network namespace of its own (dssh-*), reached over
a veth pair with addresses in 198.18.200.0/24, with a temporary host key,
authorized key and sshd_config.  The RpcServer runs in this process; the
relay that sshd starts reaches it through its socket file.
"""
import os
import random
import shlex
import statistics
import sys
import threading
import time

import pytest
from sshd import SSHD, Sshd

from agent.common.errors import Conflict, NotFound
from agent.common.rpc.methods import Method, table
from agent.common.rpc.server import RpcServer
from agent.conf import CONF
from agent.transport import ssh
from agent.transport.errors import (AgentError, CallTimeout, HostKeyRejected,
                                    HostUnreachable)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SSHD),
    reason="needs root and OpenSSH sshd")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("dssh"), "dssh", "198.18.200.0/24")
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.destroy()


# "nope" is in the clients' table but not served: the server's answer.
METHODS = table(Method("echo", ("value",)),
                Method("sleep_echo", ("value", "delay")),
                Method("lookup", ("name",)), Method("crash"), Method("nope"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    path = tmp_path_factory.mktemp("dssh-agent") / "run" / "agent.sock"
    server = RpcServer(str(path), methods=METHODS)
    server.register("echo", lambda value: value)
    server.register("sleep_echo",
                    lambda value, delay: (time.sleep(delay), value)[1])
    server.register("lookup", _lookup)
    server.register("crash", _crash)
    server.start()
    yield server
    server.stop()


def _lookup(name):
    if name == "taken":
        raise Conflict("instance taken is busy")
    raise NotFound(f"no instance {name}")


def _crash():
    raise ZeroDivisionError("division by zero")


@pytest.fixture
def conf(sshd, agent, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{sshd.address} {sshd.host_key_line}")
    relay = shlex.join([sys.executable, "-m", "agent.host.relay",
                        "--socket", agent.path])
    overrides = {"private_key": str(sshd.client_key),
                 "known_hosts": str(known_hosts), "user": "root",
                 "connect_timeout": 5.0, "relay_command": relay}
    for name, value in overrides.items():
        CONF.set_override(name, value, group="ssh")
    yield known_hosts
    for name in overrides:
        CONF.clear_override(name, group="ssh")


@pytest.fixture
def connections():
    pool = ssh.SSHConnections()
    yield pool
    pool.close_all()


@pytest.fixture
def client(sshd, conf, connections):
    with ssh.AgentClient("host1", sshd.address, connections=connections,
                         methods=METHODS) as agent_client:
        yield agent_client


def test_call_returns_the_agents_answer(client):
    assert client.call("echo", value={"a": [1, 2, "é"]}) == \
        {"a": [1, 2, "é"]}


def test_remote_errors_arrive_as_their_class(client):
    with pytest.raises(NotFound, match="no instance vm1") as err:
        client.call("lookup", name="vm1")
    assert err.value.host == "host1"
    with pytest.raises(Conflict, match="instance taken is busy"):
        client.call("lookup", name="taken")
    with pytest.raises(AgentError,
                       match="ZeroDivisionError: division by zero"):
        client.call("crash")
    with pytest.raises(NotFound, match="no such RPC method: nope"):
        client.call("nope")
    assert client.call("echo", value=1) == 1    # the channel survives


def test_concurrent_calls_from_ten_threads(client):
    results = {}

    def worker(n):
        results[n] = [client.call("sleep_echo", value=[n, i],
                                  delay=random.random() / 50)
                      for i in range(20)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {n: [[n, i] for i in range(20)] for n in range(10)}


def test_clients_of_one_host_share_one_transport(sshd, conf, connections):
    with ssh.AgentClient("host1", sshd.address,
                         connections=connections, methods=METHODS) as one, \
            ssh.AgentClient("host1", sshd.address,
                            connections=connections, methods=METHODS) as two:
        assert one.call("echo", value=1) == 1
        assert two.call("echo", value=2) == 2
        assert one._channel.get_transport() is two._channel.get_transport()
        assert one._channel is not two._channel


def test_call_timeout(client):
    with pytest.raises(CallTimeout, match="no reply to sleep_echo"):
        client.call("sleep_echo", timeout=0.2, value=1, delay=1)
    assert client.call("echo", value=2) == 2


def test_notifications_reach_subscribers(client, agent):
    got = []
    arrived = threading.Event()

    def callback(event, data):
        got.append((event, data))
        arrived.set()

    client.subscribe(callback)
    agent.publish("domain.lifecycle", {"uuid": "u1", "state": "stopped"})
    assert arrived.wait(5)
    assert got == [("domain.lifecycle", {"uuid": "u1", "state": "stopped"})]


def test_unknown_host_key_is_refused(sshd, conf, connections):
    conf.write_text("")
    with ssh.AgentClient("host1", sshd.address,
                         connections=connections, methods=METHODS) as unknown:
        with pytest.raises(HostKeyRejected) as err:
            unknown.call("echo", value=1)
    message = str(err.value)
    assert "host1" in message and "not in" in message
    assert "ssh-ed25519 SHA256:" in message
    assert "\n" not in message


def test_changed_host_key_is_refused(sshd, conf, connections):
    old = sshd.host_key_line
    sshd.stop()
    sshd.host_key_line = sshd.new_host_key()
    sshd.start()
    conf.write_text(f"{sshd.address} {old}")
    with ssh.AgentClient("host1", sshd.address,
                         connections=connections, methods=METHODS) as changed:
        with pytest.raises(HostKeyRejected) as err:
            changed.call("echo", value=1)
    message = str(err.value)
    assert "host1" in message and "does not match" in message
    assert message.count("ssh-ed25519 SHA256:") == 2    # expected and got


def test_reconnect_after_sshd_restart(sshd, client):
    events = []
    client.subscribe(lambda event, data: events.append(event))
    assert client.call("echo", value="before") == "before"
    sshd.stop()
    sshd.start()
    assert client.call("echo", value="after") == "after"
    deadline = time.monotonic() + 5
    while "agent.reconnected" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["agent.disconnected", "agent.reconnected"]


def test_calls_in_flight_fail_when_the_host_goes_away(sshd, client):
    outcome = []

    def slow_call():
        try:
            client.call("sleep_echo", value=1, delay=3)
        except HostUnreachable as err:
            outcome.append(err)

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.5)
    sshd.stop()
    thread.join(10)
    sshd.start()
    assert len(outcome) == 1 and not isinstance(outcome[0], CallTimeout)
    assert "host1" in str(outcome[0])


def test_unreachable_address(sshd, conf, connections):
    # A port nothing listens on, in the test's own namespace.
    with ssh.AgentClient("ghost", sshd.address, port=2222,
                         connections=connections, methods=METHODS) as ghost:
        with pytest.raises(HostUnreachable, match="cannot connect to ghost"):
            ghost.call("echo", value=1)


def test_missing_agent_socket_is_reported(sshd, conf, connections, tmp_path):
    relay = shlex.join([sys.executable, "-m", "agent.host.relay",
                        "--socket", str(tmp_path / "none.sock")])
    with ssh.AgentClient("host1", sshd.address, relay_command=relay,
                         connections=connections, methods=METHODS) as broken:
        with pytest.raises(HostUnreachable,
                           match="relay exited .status 1.: .*cannot connect"):
            broken.call("echo", value=1)


def test_timings(sshd, conf, connections, record_property):
    """Connection setup and round trip of a trivial call (reported)."""
    setups, logins = [], []
    for _ in range(5):
        pool = ssh.SSHConnections()
        start = time.perf_counter()
        with ssh.AgentClient("host1", sshd.address,
                             connections=pool, methods=METHODS) as fresh:
            pool.transport("host1", sshd.address, 22)
            logins.append(time.perf_counter() - start)
            fresh.call("echo", value=0)
            setups.append(time.perf_counter() - start)
    with ssh.AgentClient("host1", sshd.address,
                         connections=connections, methods=METHODS) as warm:
        warm.call("echo", value=0)
        rtts = []
        for i in range(100):
            start = time.perf_counter()
            warm.call("echo", value=i)
            rtts.append(time.perf_counter() - start)
    setup_ms = statistics.median(setups) * 1000
    login_ms = statistics.median(logins) * 1000
    rtt_ms = statistics.median(rtts) * 1000
    record_property("ssh_setup_ms", round(setup_ms, 1))
    record_property("ssh_login_ms", round(login_ms, 1))
    record_property("ssh_rtt_ms", round(rtt_ms, 2))
    print(f"\nconnection setup to first reply: median {setup_ms:.1f} ms of 5 "
          f"(SSH login {login_ms:.1f} ms, relay start and call the rest); "
          f"round trip: median {rtt_ms:.2f} ms of 100")
    assert rtt_ms < 100 and setup_ms < 5000

