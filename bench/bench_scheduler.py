"""Placement time for 10 to 10,000 simulated hosts, SQLite and (with
--database) another database side by side.

Columns, milliseconds, median and spread (max - min) of --runs runs:

- ``select()``: the filters and weighers over HostState records in
  memory (no store);
- ``place``: what an operation does per placement
  (agent.controller.placement.place): read the host states the request
  may use from the store, filter, weigh, claim the best host atomically
  (the claim is released after each run, untimed), for the request in
  zone az1 on SSD;
- ``any host``: the same for a request with no zone and no aggregate
  properties (nothing narrows the read by zone or aggregate: the worst
  case);
- ``dry run``: reading every host and selecting, as a dry run's
  explanation and a No valid host do (not in the target).

The fleet: 2 zones, a third of the hosts without SSDs, 2% down, varied
usage written as allocations; the requests: 2 vCPUs, 2 GB, 20 GB.  The
target is 50 ms at 10,000 hosts; 122 ms was measured before this work
(2026-12-01, SQLite, same request, host_states() + select()).  The
PostgreSQL tables are queried right after loading, before autovacuum's
first ANALYZE (the store's plan must not need statistics).

The bench uses only interfaces the earlier code has too, so the code of
another commit can be measured in the same session:
``git archive COMMIT | tar -x -C /tmp/old`` and run this file with
``PYTHONPATH=/tmp/old``.

    .venv/bin/python bench/bench_scheduler.py [--runs 5]
        [--postgresql]      (a throw-away server: agent.lab.pgserver)
        [--database postgresql+psycopg://user@host/db]  (an empty database:
        the bench creates its tables and drops them after)
"""
import argparse
import os
import statistics
import tempfile
import time

from agent.controller import placement
from agent.controller.db import Store, upgrade
from agent.controller.db.models import (Aggregate, AggregateHost,
                                        AggregateMetadata, Allocation, Base,
                                        Host)
from agent.controller.scheduler import HostState, Policy, Request, select

SIZES = (10, 100, 1_000, 10_000)
TARGET_MS, BEFORE_MS = 50.0, 122.0
FLAVOR = {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20,
          "properties": {"ssd": "true"}}
ZONE = "az1"
REQUEST = Request.for_flavor(FLAVOR, availability_zone=ZONE)
ANY = Request(vcpus=2, ram_mb=2048, disk_gb=20)
POLICY = Policy()


def fleet(n):
    """n hosts: 2 zones, a third without SSDs, 2% down, varied usage."""
    return [HostState(name=f"h{i:05d}", up=i % 50 != 0, vcpus=16,
                      memory_mb=65536, disk_gb=1000,
                      vcpus_alloc=i % 40, ram_mb_alloc=(i * 997) % 60000,
                      disk_gb_alloc=(i * 13) % 900,
                      availability_zone=("az1", "az2")[i % 2],
                      metadata={"ssd": frozenset({("true", "false")[
                          i % 3 == 0]}),
                          "availability_zone": frozenset({("az1", "az2")[
                              i % 2]})})
            for i in range(n)]


def load_store(url, hosts):
    """Write ``hosts`` (their zone/ssd aggregates, their usage as one
    allocation each) straight into the store's tables."""
    store = Store(url)
    with store.db.write() as s:
        aggs = {}
        for zone in ("az1", "az2"):
            for ssd in ("true", "false"):
                agg = Aggregate(name=f"{zone}-{ssd}")
                s.add(agg)
                aggs[zone, ssd] = agg
        s.flush()
        for (zone, ssd), agg in aggs.items():
            for key, value in (("availability_zone", zone), ("ssd", ssd)):
                s.add(AggregateMetadata(aggregate_id=agg.id, key=key,
                                        value=value))
        rows = [Host(name=h.name, address="198.18.0.2",
                     state="up" if h.up else "down", vcpus=h.vcpus,
                     memory_mb=h.memory_mb, disk_gb=h.disk_gb)
                for h in hosts]
        s.add_all(rows)
        s.flush()
        for h, row in zip(hosts, rows, strict=True):
            [ssd] = h.metadata["ssd"]
            s.add(AggregateHost(aggregate_id=aggs[
                h.availability_zone, ssd].id, host_id=row.id))
            s.add(Allocation(host=h.name, consumer=f"used-{h.name}",
                             instance_uuid=f"used-{h.name}",
                             vcpus=h.vcpus_alloc, ram_mb=h.ram_mb_alloc,
                             disk_gb=h.disk_gb_alloc))
    return store


def timed(fn, runs, after=None):
    """(median, spread) of ``runs`` runs of ``fn``, in ms; ``after()``
    runs after each, untimed."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
        if after is not None:
            after()
    return statistics.median(times), max(times) - min(times)


ANY_FLAVOR = {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20}


def place_once(store):
    return placement.place(store, FLAVOR, "bench-consumer",
                           "bench-consumer", availability_zone=ZONE)


def place_any(store):
    return placement.place(store, ANY_FLAVOR, "bench-consumer",
                           "bench-consumer")


def release(store):
    store.release("bench-consumer")


def store_columns(url, hosts, runs, wipe=None):
    """(place, any host, dry run, candidates) over a store at ``url``."""
    upgrade(url)
    store = load_store(url, hosts)
    try:
        cols = []
        for fn in (place_once, place_any):
            fn(store)           # warm: compiled statements, connections
            release(store)
            cols.append(timed(lambda f=fn: f(store), runs,
                              after=lambda: release(store)))
        cols.append(timed(lambda: select(ANY, store.host_states(), POLICY),
                          runs))
        found = len(select(REQUEST, store.host_states(), POLICY).candidates)
    finally:
        if wipe:
            wipe(store)
        store.close()
    return (*cols, found)


def wipe_database(store):
    """Drop the tables the bench created (alembic's too)."""
    Base.metadata.drop_all(store.db.engine)
    with store.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def cell(pair):
    return f"{pair[0]:7.2f} ±{pair[1]:6.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database", metavar="URL",
                        help="also measure on this database (an empty one: "
                             "its drover tables are dropped after)")
    parser.add_argument("--postgresql", action="store_true",
                        help="also measure on a throw-away PostgreSQL "
                             "server of the bench's own")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs: at least 3")
    server = None
    if args.postgresql:
        from agent.lab.pgserver import PgServer
        server = PgServer().start()
        server.wait_ready()
        args.database = server.create_database("bench")
    try:
        run(args)
    finally:
        if server is not None:
            server.stop()


def run(args):
    other = args.database.split(":", 1)[0].split("+")[0] \
        if args.database else None
    stores = ["sqlite"] + ([other] if other else [])
    head = f"{'hosts':>6} | {'select() ms':>15}"
    for name in stores:
        head += "".join(f" | {name + ' ' + col:>18}"
                        for col in ("place ms", "any host", "dry run"))
    print(f"median ± spread of {args.runs} runs, milliseconds; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(head + " | candidates")
    print("-" * (len(head) + 13))
    results = {}
    for n in SIZES:
        hosts = fleet(n)
        pure = timed(lambda h=hosts: select(REQUEST, h, POLICY), args.runs)
        line = f"{n:>6} | {cell(pure)}"
        found = None
        for name in stores:
            if name == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    cols = store_columns(f"sqlite:///{tmp}/bench.db",
                                         hosts, args.runs)
            else:
                cols = store_columns(args.database, hosts, args.runs,
                                     wipe=wipe_database)
            results[name, n] = cols[0][0], cols[1][0]
            found = cols[3]
            line += "".join(f" | {cell(c):>18}" for c in cols[:3])
        print(f"{line} | {found}")
    for name in stores:
        for label, ms in zip(("place", "any host"), results[name, SIZES[-1]],
                             strict=True):
            print(f"{name}: {label} at {SIZES[-1]:,} hosts {ms:.1f} ms = "
                  f"{ms / TARGET_MS:.2f} x the {TARGET_MS:g} ms target, "
                  f"{BEFORE_MS / ms:.1f} x faster than the {BEFORE_MS:g} "
                  "ms before")


if __name__ == "__main__":
    main()
