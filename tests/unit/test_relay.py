import json
import os
import subprocess
import sys
import threading

import pytest
from rpc_helpers import sock_dir  # noqa: F401

from agent.common.rpc.server import RpcServer


@pytest.fixture
def server(sock_dir):  # noqa: F811
    rpc = RpcServer(os.path.join(sock_dir, "agent.sock"))
    rpc.register("echo", lambda value: value)
    rpc.start()
    yield rpc
    rpc.stop()


def _relay(path, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "agent.host.relay", "--socket", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        **kwargs)


def test_relay_bridges_requests_and_finishes_replies_after_stdin_ends(
        server):
    release = threading.Event()
    server.register("wait", lambda: release.wait(5))
    requests = b"".join(
        json.dumps(r).encode() + b"\n" for r in (
            {"id": 1, "method": "wait", "params": {}},
            {"id": 2, "method": "echo", "params": {"value": "é" * 100_000}}))
    proc = _relay(server.path)
    proc.stdin.write(requests)
    proc.stdin.close()          # half-close: the slow reply must still come
    first = json.loads(proc.stdout.readline())
    release.set()
    second = json.loads(proc.stdout.readline())
    assert first == {"id": 2, "result": "é" * 100_000}
    assert second == {"id": 1, "result": True}
    assert proc.wait(5) == 0
    assert proc.stdout.read() == b""


def test_relay_exits_when_the_agent_goes_away(server):
    proc = _relay(server.path)
    proc.stdin.write(b'{"id": 1, "method": "echo", "params": {"value": 1}}\n')
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["result"] == 1
    server.stop()
    assert proc.wait(5) == 0
    proc.stdin.close()


def test_relay_without_an_agent_says_so_in_one_line(sock_dir):  # noqa: F811
    path = os.path.join(sock_dir, "missing.sock")
    proc = _relay(path)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 1 and out == b""
    assert err.decode() == ("drover-agent relay: cannot connect to the agent "
                            f"at {path}: No such file or directory\n")
