"""The leader lease of standby controllers, on a real PostgreSQL server:
one leader at a time, a new term for each, a deposed leader's writes
refused (its engine stops and the new leader resumes its task), and a
standby's API saying where the leader is."""
import subprocess
import sys
import time
import types

import psycopg
import pytest

from agent.common.errors import Deposed, NotLeader
from agent.controller import api
from agent.controller.db import Store, upgrade
from agent.controller.leader import LeaderLease
from agent.controller.tasks.engine import TaskEngine
from agent.controller.tasks.workflow import Step, Workflow


@pytest.fixture
def url(pg_url):
    upgrade(pg_url)
    return pg_url


@pytest.fixture
def leases(url):
    made = []

    def make(name):
        lease = LeaderLease(url, name=name, address=f"/run/{name}.sock")
        made.append(lease)
        return lease
    yield make
    for lease in made:
        lease.close()


def _fenced_store(url, lease):
    store = Store(url)
    store.db.term, store.db.fence = lease.term, lease.check
    return store


def _acquired(lease, within_s=30):
    """As a standby does: try until the lock is free (PostgreSQL frees
    it once the holder's backend has exited)."""
    deadline = time.monotonic() + within_s
    while not lease.try_acquire():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _kill_session(url, pid):
    """What the leader's death does to its lock: the session ends."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 30      # gone, its locks with it
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                           (pid,)).fetchone():
            assert time.monotonic() < deadline, "the session lives on"
            time.sleep(0.05)


def test_one_leader_at_a_time_each_with_a_new_term(leases):
    a, b = leases("a"), leases("b")
    assert a.try_acquire() and a.term == 1
    assert not b.try_acquire() and not b.leading
    assert b.current()["holder"] == "a"
    assert b.current()["address"] == "/run/a.sock"
    a.close()                       # the leader stops: its session ends
    assert _acquired(b) and b.term == 2
    assert b.current()["holder"] == "b"


def test_a_deposed_leader_writes_nothing(url, leases):
    a = leases("a")
    assert a.try_acquire()
    store = _fenced_store(url, a)
    try:
        store.upsert_host("h1", "198.18.0.2", facts={
            "vcpus": 4, "memory_mb": 4096, "disk_gb": 10})
        _kill_session(url, a.pid)
        assert not a.holds()
        # Refused at once, before any standby raised the term.
        with pytest.raises(Deposed, match="no longer the leader"):
            store.upsert_host("h2", "198.18.0.3", facts={
                "vcpus": 4, "memory_mb": 4096, "disk_gb": 10})
        b = leases("b")
        assert _acquired(b) and b.term == 2
        with pytest.raises(Deposed):
            store.task_create("demo", {})
        assert [h["name"] for h in Store(url).list_hosts()] == ["h1"]
        assert Store(url).list_tasks() == []
    finally:
        store.close()


def test_the_deposed_engine_stops_and_the_new_leader_resumes(url, leases):
    a = leases("a")
    assert a.try_acquire()
    store_a = _fenced_store(url, a)
    calls = []

    def step(name, depose=False):
        def do(ctx):
            calls.append((ctx.services, name))
            if depose:
                _kill_session(url, a.pid)     # lease lost mid-step
            return {name: ctx.services}
        return do

    def workflow(who, depose_at=None):
        return Workflow("demo", [Step(n, step(n, n == depose_at),
                                      lambda ctx: calls.append("undo"))
                                 for n in "abc"])

    tid = store_a.task_create("demo", {})
    TaskEngine(store_a, {"demo": lambda p: workflow("a", "b")},
               services="a").run(tid)
    assert calls == [("a", "a"), ("a", "b")]     # stopped: no c, no undo
    store_b = None
    try:
        rec = Store(url)
        assert rec.task_get(tid)["state"] == "running"
        assert [s["state"] for s in rec.steps_get(tid)] == ["done",
                                                            "started"]
        b = leases("b")
        assert _acquired(b)
        store_b = _fenced_store(url, b)
        eng = TaskEngine(store_b, {"demo": lambda p: workflow("b")},
                         services="b", max_workers=1)
        assert eng.resume_all() == [tid]
        eng.shutdown()
        assert calls[2:] == [("b", "b"), ("b", "c")]
        task = rec.task_get(tid)
        assert task["state"] == "done" and task["term"] == 2
        assert [s["data"] for s in rec.steps_get(tid)] == [
            {"a": "a"}, {"b": "b"}, {"c": "b"}]
    finally:
        store_a.close()
        if store_b is not None:
            store_b.close()


def test_a_standby_answers_with_where_the_leader_is(url, leases):
    a, b = leases("ctl-1"), leases("ctl-2")
    assert a.try_acquire()
    b.try_acquire()
    methods = {}
    server = types.SimpleNamespace(
        register=lambda name, fn: methods.__setitem__(name, fn))
    svc = types.SimpleNamespace(leader=b, store=None)
    api.register(server, svc)
    with pytest.raises(NotLeader) as err:
        methods["server.list"]()
    assert str(err.value) == (
        "controller ctl-2 is a standby; the leader is ctl-1 (API socket "
        "/run/ctl-1.sock, term 1)")
    who = methods["controller.leader"]()
    assert who["role"] == "standby"
    assert who["leader"]["address"] == "/run/ctl-1.sock"


def _controller(tmp_path, url, name):
    d = tmp_path / name
    d.mkdir()
    conf = d / "controller.conf"
    conf.write_text(f"[database]\nconnection = {url}\nname = {name}\n"
                    "leader_poll_interval = 0.2\n[controller]\n"
                    f"socket_path = {d}/sock\n"
                    f"image_store_path = {tmp_path}/images\n")
    proc = subprocess.Popen([sys.executable, "-m", "agent.controller.daemon",
                             "--config-file", str(conf)],
                            stdout=subprocess.DEVNULL,
                            stderr=open(d / "log", "w"))
    return proc, str(d / "sock")


def _role(socket, within_s=60):
    from agent.transport.local import LocalClient
    deadline = time.monotonic() + within_s
    while True:
        try:
            with LocalClient(socket, timeout=10) as client:
                return client.call("controller.leader")
        except OSError:
            assert time.monotonic() < deadline, f"nothing on {socket}"
            time.sleep(0.2)


def _wait_role(socket, role, within_s=60):
    deadline = time.monotonic() + within_s
    while (who := _role(socket))["role"] != role:
        assert time.monotonic() < deadline, who
        time.sleep(0.2)
    return who


def test_a_deposed_controller_exits_and_the_standby_leads(tmp_path,
                                                          pg_url):
    """Two drover-controller processes: the first leads, the second
    stands by; when the leader's lock session ends, it exits (3, to be
    restarted as a standby) and the standby leads in a new term."""
    first, sock1 = _controller(tmp_path, pg_url, "c1")
    second = None
    try:
        assert _wait_role(sock1, "leader")["term"] == 1
        second, sock2 = _controller(tmp_path, pg_url, "c2")
        who = _wait_role(sock2, "standby")
        assert who["leader"]["holder"] == "c1"
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            backend = conn.execute("SELECT backend_pid FROM leader"
                                   ).fetchone()[0]
        _kill_session(pg_url, backend)
        assert first.wait(timeout=60) == 3
        who = _wait_role(sock2, "leader")
        assert (who["term"], who["leader"]["holder"]) == (2, "c2")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
