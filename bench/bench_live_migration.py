"""Live migration: ``drover server migrate --live-migration --wait``
against raw ``virsh migrate --live --p2p --unsafe --persistent`` of the
same guest between the same two hosts, in the same run.

A shared-storage guest goes h1 -> h2 -> h1 with drover, then h1 -> h2 ->
h1 with virsh (so drover's database is right again before drover's next
pair), for several rounds.  Wall time (what the operator waits: CLI to
end for drover, the virsh command for virsh) and downtime (libvirt's
completed-job statistics: the source agent's for drover, ``virsh
domjobinfo --completed`` on the source for virsh, whose definition is
removed after that) for each; medians and ratios.  Then a guest
dirtying memory faster than a bandwidth cap, with post-copy (switched at
the completion timeout) and with auto-converge: completion time and
downtime.

    .venv/bin/python bench/bench_live_migration.py [--rounds 3]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from benchlab import api, bench_fleet, drover

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from helpers import Fleet, wait_guest  # noqa: E402
from live_helpers import agent_options  # noqa: E402

VIRSH_FLAGS = ["--live", "--p2p", "--unsafe", "--persistent"]


def _virsh(uri, *args):
    proc = subprocess.run(["virsh", "-q", "-c", uri, *args],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _downtime_ms(uri, uuid):
    out = _virsh(uri, "domjobinfo", uuid, "--completed")
    found = re.search(r"Total downtime:\s+(\d+) ms", out)
    return int(found[1]) if found else None


def virsh_migrate(src, dst, uuid):
    """virsh migrate, timed; the source keeps its definition until the
    completed job's statistics (downtime) are read there, then it is
    undefined (what --undefinesource does at the end, in milliseconds)."""
    start = time.perf_counter()
    _virsh(src["libvirt_uri"], "migrate", *VIRSH_FLAGS, "--migrateuri",
           f"tcp://{dst['address']}", uuid, dst["libvirt_uri"])
    took = time.perf_counter() - start
    downtime = _downtime_ms(src["libvirt_uri"], uuid)
    _virsh(src["libvirt_uri"], "undefine", uuid)
    return took, downtime


def drover_migrate(socket, name, dst):
    start = time.perf_counter()
    drover(socket, "server", "migrate", name, "--live-migration", "--host",
           dst["name"], "--wait")
    took = time.perf_counter() - start
    mig = api(socket, "migration.show", name=name)
    return took, (mig.get("progress") or {}).get("downtime_ms")


def _settled(socket, name, host):
    """drover sees the guest running on ``host`` again (after virsh)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        srv = api(socket, "server.show", name=name)
        if srv["host"] == host and srv["power_state"] == "Running":
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name} not seen running on {host}")


def create(socket, name, host, *extra):
    """Boot a shared-storage guest and wait until it answers."""
    drover(socket, "server", "create", name, "--flavor", "lab.small",
           "--image", "lab-guest", "--host", host, "--storage", "shared",
           "--wait", *extra)
    srv = api(socket, "server.show", name=name)
    wait_guest(srv["addresses"])
    return srv


def compare(socket, hosts, rounds):
    h1, h2 = hosts
    name = "bench-lm"
    srv = create(socket, name, h1["name"])
    boot = wait_guest(srv["addresses"])["boot"]
    results = {"drover": [], "virsh": []}
    for _ in range(rounds):
        for dst in (h2, h1):
            results["drover"].append(drover_migrate(socket, name, dst))
        for src, dst in ((h1, h2), (h2, h1)):
            results["virsh"].append(virsh_migrate(src, dst, srv["id"]))
        _settled(socket, name, h1["name"])
    assert wait_guest(srv["addresses"])["boot"] == boot, "guest rebooted"
    drover(socket, "server", "delete", name, "--wait")
    return results


def non_converging(fleet, socket, hosts):
    h1, h2 = hosts
    out = {}
    base = dict(bandwidth=8, completion_timeout=10, downtime=20,
                downtime_max=50)
    modes = {"post-copy": dict(base, permit_post_copy=True,
                               timeout_action="force_complete"),
             # Throttling needs short iterations to bite (as in the
             # tests): 16 MiB/s against 64 MiB/s of dirtying.
             "auto-converge": dict(base, permit_auto_converge=True,
                                   bandwidth=16, downtime=50,
                                   downtime_max=500, completion_timeout=60)}
    for mode, opts in modes.items():
        name = f"bench-busy-{mode}"
        create(socket, name, h1["name"], "--property", "dirty_mbps=64")
        with agent_options(fleet, h1["name"], **opts):
            try:
                out[mode] = drover_migrate(socket, name, h2)
            except RuntimeError as err:
                out[mode] = (None, str(err).splitlines()[-1])
        drover(socket, "server", "delete", name, "--wait")
    return out


def _median(pairs, index):
    values = [p[index] for p in pairs if p[index] is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_fleet("dlmb", "198.18.104.0/24", hosts=2) as (lab, socket):
        fleet = Fleet(lab, socket)
        hosts = sorted(lab.status(), key=lambda h: h["name"])
        results = compare(socket, hosts, args.rounds)
        busy = non_converging(fleet, socket, hosts)
    summary = {}
    for tool, pairs in results.items():
        summary[tool] = {"wall_s": _median(pairs, 0),
                         "downtime_ms": _median(pairs, 1),
                         "runs": [(round(w, 3), d) for w, d in pairs]}
    summary["wall_ratio"] = round(summary["drover"]["wall_s"]
                                  / summary["virsh"]["wall_s"], 3)
    dv, dd = summary["virsh"]["downtime_ms"], summary["drover"]["downtime_ms"]
    summary["downtime_ratio"] = round(dd / dv, 3) if dv and dd else None
    summary["non_converging"] = {
        mode: {"completion_s": None if w is None else round(w, 2),
               "downtime_ms": d} for mode, (w, d) in busy.items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
