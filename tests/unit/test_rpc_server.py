import logging
import os
import socket
import stat
import threading
import time

import pytest

from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.common.rpc.server import RpcServer
from rpc_helpers import LineClient, sock_dir  # noqa: F401


def _wait_for(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


@pytest.fixture
def server(sock_dir):  # noqa: F811
    rpc = RpcServer(os.path.join(sock_dir, "run", "agent.sock"))
    rpc.register("echo", lambda value: value)
    rpc.register("add", lambda a, b=0: a + b)
    rpc.start()
    yield rpc
    rpc.stop()


@pytest.fixture
def client(server):
    line_client = LineClient(server.path)
    yield line_client
    line_client.close()


def test_socket_is_private_and_removed_on_stop(sock_dir):  # noqa: F811
    path = os.path.join(sock_dir, "new", "agent.sock")
    rpc = RpcServer(path)
    rpc.start()
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    rpc.stop()
    assert not os.path.exists(path)


def test_a_stale_socket_is_replaced(sock_dir):  # noqa: F811
    path = os.path.join(sock_dir, "agent.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()
    rpc = RpcServer(path)
    rpc.register("echo", lambda value: value)
    rpc.start()
    try:
        assert LineClient(path).call("echo", value=3)["result"] == 3
    finally:
        rpc.stop()


def test_a_live_agent_or_another_file_is_not_replaced(server, sock_dir):  # noqa: F811,E501
    with pytest.raises(Conflict, match="another agent is serving"):
        RpcServer(server.path).start()
    other = os.path.join(sock_dir, "file")
    open(other, "w").close()
    with pytest.raises(Conflict, match="is not a socket"):
        RpcServer(other).start()
    assert LineClient(server.path).call("echo", value=1)["result"] == 1


def test_call_and_reply(client):
    assert client.call("add", call_id=7, a=2, b=3) == {"id": 7, "result": 5}
    assert client.call("echo", call_id="x", value=None) == \
        {"id": "x", "result": None}


def test_request_errors_are_replies_and_the_connection_survives(client):
    assert client.call("nope", call_id=1)["error"] == {
        "type": "NotFound", "message": "no such RPC method: nope"}
    error = client.call("add", call_id=2, c=1)["error"]
    assert error["type"] == "InvalidInput"
    assert error["message"].startswith("bad parameters for add:")
    client.send_raw(b"{not json\n")
    reply = client.read()
    assert reply["id"] is None and reply["error"]["type"] == "InvalidInput"
    client.send(id=4, params={})
    assert client.read()["error"]["message"].startswith("malformed request")
    assert client.call("echo", call_id=5, value="ok")["result"] == "ok"


def test_raised_errors_are_mapped_by_class(server, client, caplog):
    def missing():
        raise NotFound("instance 42 not found")

    def crash():
        raise ZeroDivisionError("division by zero\nsecond line")

    server.register("missing", missing)
    server.register("crash", crash)
    server.register("not_json", lambda: object())
    assert client.call("missing")["error"] == {
        "type": "NotFound", "message": "instance 42 not found"}
    with caplog.at_level(logging.ERROR, logger="agent.common.rpc.server"):
        assert client.call("crash")["error"] == {
            "type": "InternalError",
            "message": "ZeroDivisionError: division by zero"}
    assert "RPC crash failed" in caplog.text and "Traceback" in caplog.text
    error = client.call("not_json")["error"]
    assert error["type"] == "InternalError"
    assert "not JSON serializable" in error["message"]


def test_builtin_names_cannot_be_registered(server):
    with pytest.raises(InvalidInput):
        server.register("subscribe", lambda: None)


def test_calls_run_concurrently_and_reply_out_of_order(server, client):
    release = threading.Event()
    server.register("wait", lambda: release.wait(5))
    client.send(id=1, method="wait", params={})
    client.send(id=2, method="echo", params={"value": "fast"})
    assert client.read() == {"id": 2, "result": "fast"}
    release.set()
    assert client.read() == {"id": 1, "result": True}


def test_many_calls_in_flight_on_one_connection(server, client):
    barrier = threading.Barrier(20, timeout=5)
    server.register("meet", lambda n: (barrier.wait(), n)[1])
    for n in range(20):
        client.send(id=n, method="meet", params={"n": n})
    replies = [client.read() for _ in range(20)]
    assert sorted(r["id"] for r in replies) == list(range(20))
    assert all(r["result"] == r["id"] for r in replies)


def test_notifications_go_to_subscribers_only(server):
    subscriber, other, picky = (LineClient(server.path) for _ in range(3))
    assert subscriber.call("subscribe") == {"id": 1, "result": True}
    assert picky.call("subscribe", events=["migration.progress"])["result"]
    server.publish("domain.lifecycle", {"uuid": "u1", "event": "stopped"})
    server.publish("migration.progress", {"percent": 50})
    assert subscriber.read() == {"event": "domain.lifecycle",
                                 "data": {"uuid": "u1", "event": "stopped"}}
    assert subscriber.read()["event"] == "migration.progress"
    assert picky.read() == {"event": "migration.progress",
                            "data": {"percent": 50}}
    # other gets nothing: its next line is the reply to its own call.
    assert other.call("echo", call_id=9, value=1) == {"id": 9, "result": 1}
    assert subscriber.call("unsubscribe", call_id=2)["result"] is True
    server.publish("domain.lifecycle", {})
    assert subscriber.call("echo", call_id=3, value=2) == \
        {"id": 3, "result": 2}


def test_idle_clients_cost_no_thread_and_closed_ones_are_freed(server):
    before = threading.active_count()
    clients = [LineClient(server.path) for _ in range(30)]
    clients[0].call("echo", value=0)
    _wait_for(lambda: server.connection_count == 30)
    # The call's worker ends with the call; no thread waits on a client.
    _wait_for(lambda: threading.active_count() == before)
    time.sleep(0.2)
    assert threading.active_count() == before
    for line_client in clients:
        line_client.close()
    _wait_for(lambda: server.connection_count == 0)


def test_broken_clients_are_dropped(server):
    half = LineClient(server.path)
    half.send_raw(b'{"id": 1, "meth')
    half.close()
    oversized = LineClient(server.path)
    server.max_line = 1000
    oversized.send_raw(b"x" * 5000)
    _wait_for(lambda: server.connection_count == 0)
    with pytest.raises((EOFError, ConnectionResetError)):
        oversized.read()
    assert LineClient(server.path).call("echo", value=1)["result"] == 1


def test_a_client_that_does_not_read_is_dropped(server):
    server.max_backlog = 100_000
    deaf = LineClient(server.path)
    deaf.call("subscribe")
    for _ in range(200):    # well past the socket buffers and the backlog
        server.publish("noise", {"pad": "x" * 10_000})
    _wait_for(lambda: server.connection_count == 0)
    assert LineClient(server.path).call("echo", value=1)["result"] == 1


def test_replies_still_arrive_after_the_client_half_closes(server):
    release = threading.Event()
    server.register("wait", lambda: release.wait(5))
    half = LineClient(server.path)
    half.send(id=1, method="wait", params={})
    half.sock.shutdown(socket.SHUT_WR)
    time.sleep(0.1)
    release.set()
    assert half.read() == {"id": 1, "result": True}
    with pytest.raises(EOFError):
        half.read()
    _wait_for(lambda: server.connection_count == 0)


def test_stop_closes_connections(server, client):
    client.call("echo", value=1)
    server.stop()
    with pytest.raises(EOFError):
        client.read()
    assert not os.path.exists(server.path)
