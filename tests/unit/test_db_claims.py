"""Capacity claims are atomic: concurrent claims, from threads or from
processes sharing the database, never promise a host more than its limits.
Every test runs on SQLite (BEGIN IMMEDIATE) and on a real PostgreSQL
server (the host row's FOR UPDATE lock): there the two-process race is two
controllers' worth of connections, 20 concurrent claims for 10 places."""
import json
import subprocess
import sys
import threading
import time

import pytest

from agent.common.errors import Conflict, NotFound
from agent.controller.db import ClaimFailed, Store
from agent.controller.scheduler import Limits

# Each host fits 5 claims of 1024 MB: 512 reserved + 5 x 1024.
HOST_RAM = 512 + 5 * 1024
HOSTS = ("h1", "h2")


@pytest.fixture
def url(store_url):
    url = store_url
    store = Store(url)
    for name in HOSTS:
        store.upsert_host(name, "198.18.0.2", facts={
            "vcpus": 64, "memory_mb": HOST_RAM, "disk_gb": 1000})
    store.close()
    return url


@pytest.fixture
def store(url):
    st = Store(url)
    yield st
    st.close()


def test_claim_within_limits_then_refused(store):
    for i in range(5):
        store.claim("h1", f"c{i}", 1, 1024, 1)
    with pytest.raises(ClaimFailed, match="host h1 cannot take 1024 MB RAM: "
                                          "5120 of 5120 used"):
        store.claim("h1", "c5", 1, 1024, 1)
    assert store.host_usage("h1") == {"vcpus": 5, "ram_mb": 5120,
                                      "disk_gb": 5}


def test_explicit_limits_and_zero_requests(store):
    limits = Limits(vcpus=2, ram_mb=100_000, disk_gb=100)
    store.claim("h1", "a", 2, 10, 0, limits=limits)
    with pytest.raises(ClaimFailed, match="vCPUs: 2 of 2 used"):
        store.claim("h1", "b", 1, 10, 0, limits=limits)
    store.claim("h1", "c", 0, 10, 0, limits=limits)


def test_claim_is_idempotent_for_the_same_amounts(store):
    first = store.claim("h1", "c1", 1, 1024, 1)
    assert store.claim("h1", "c1", 1, 1024, 1) == first
    with pytest.raises(Conflict, match="different allocation"):
        store.claim("h1", "c1", 2, 1024, 1)
    with pytest.raises(NotFound):
        store.claim("nope", "c1", 1, 1, 1)


def test_release_and_move_allocations(store):
    store.claim("h1", "inst", 1, 1024, 1)
    store.claim("h2", "inst", 1, 1024, 1, instance_uuid="inst")
    # A move: the source allocation goes to the migration, then is dropped
    # on confirm.
    assert store.move_allocations("inst", "mig", host="h1") == 1
    assert [a["consumer"] for a in store.list_allocations(host="h1")] == \
        ["mig"]
    assert store.list_allocations(host="h1")[0]["instance_uuid"] == "inst"
    assert store.release("mig") == 1
    assert store.host_usage("h1")["ram_mb"] == 0
    assert len(store.list_allocations(instance_uuid="inst")) == 1


def _claim_anywhere(store, consumer):
    """Try each host in turn, as an operation does after scheduling."""
    for host in HOSTS:
        try:
            store.claim(host, consumer, 1, 1024, 1)
            return host
        except ClaimFailed:
            continue
    return None


def _race(store, consumers, start_at=None):
    results = {}
    barrier = threading.Barrier(len(consumers))

    def run(consumer):
        barrier.wait()
        if start_at:
            time.sleep(max(0.0, start_at - time.time()))
        results[consumer] = _claim_anywhere(store, consumer)

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _assert_not_oversubscribed(store):
    for host in HOSTS:
        assert store.host_usage(host)["ram_mb"] <= HOST_RAM - 512


def test_twenty_threads_ten_places(store):
    results = _race(store, [f"c{i}" for i in range(20)])
    placed = [c for c, h in results.items() if h]
    assert len(placed) == 10
    _assert_not_oversubscribed(store)
    assert len(store.list_allocations()) == 10


_WORKER = """
import json, sys
sys.path.insert(0, {testdir!r})
from test_db_claims import _race
from agent.controller.db import Store
store = Store({url!r})
res = _race(store, [f"{{sys.argv[1]}}-{{i}}" for i in range(10)],
            start_at=float(sys.argv[2]))
store.close()
print(json.dumps(res))
"""


def test_two_processes_sharing_the_database(store, url):
    code = _WORKER.format(testdir=str(__import__("pathlib").Path(
        __file__).parent), url=url)
    start_at = time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", code, name,
                               str(start_at)], stdout=subprocess.PIPE,
                              text=True) for name in ("p1", "p2")]
    results = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.update(json.loads(out))
    assert len(results) == 20
    assert sum(1 for h in results.values() if h) == 10
    _assert_not_oversubscribed(store)
    assert len(store.list_allocations()) == 10
