"""Placement time for 10 to 10,000 simulated hosts.

Columns: ``select()`` over ready HostState records, and the same preceded
by ``Store.host_states()`` reading them from a SQLite store (what the
controller does per request).  Median of several runs, milliseconds.

    .venv/bin/python bench/bench_scheduler.py [--runs 7]
"""
import argparse
import statistics
import tempfile
import time

from agent.controller.db import Store, upgrade
from agent.controller.db.models import (Aggregate, AggregateHost,
                                        AggregateMetadata, Host)
from agent.controller.scheduler import HostState, Policy, Request, select

SIZES = (10, 100, 1_000, 10_000)
REQUEST = Request(vcpus=2, ram_mb=2048, disk_gb=20,
                  properties={"ssd": "true"}, availability_zone="az1")
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
    """Write ``hosts`` (and their zone/ssd aggregates) straight into the
    store's tables."""
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
        for h in hosts:
            row = Host(name=h.name, address="198.18.0.2",
                       state="up" if h.up else "down", vcpus=h.vcpus,
                       memory_mb=h.memory_mb, disk_gb=h.disk_gb)
            s.add(row)
            s.flush()
            [ssd] = h.metadata["ssd"]
            s.add(AggregateHost(aggregate_id=aggs[
                h.availability_zone, ssd].id, host_id=row.id))
    return store


def median_ms(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{'hosts':>7} | {'select() ms':>11} | {'+host_states() ms':>17} "
          f"| candidates")
    print("-" * 8 + "+" + "-" * 13 + "+" + "-" * 19 + "+" + "-" * 11)
    for n in SIZES:
        hosts = fleet(n)
        pure = median_ms(lambda h=hosts: select(REQUEST, h, POLICY),
                         args.runs)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            store = load_store(url, hosts)
            full = median_ms(
                lambda st=store: select(REQUEST, st.host_states(), POLICY),
                args.runs)
            found = len(select(REQUEST, store.host_states(),
                               POLICY).candidates)
            store.close()
        print(f"{n:>7} | {pure:>11.2f} | {full:>17.2f} | {found}")


if __name__ == "__main__":
    main()
