"""Live migration: ``drover server migrate --live-migration --wait``
against raw ``virsh migrate --live --p2p --unsafe --persistent`` of the
same guest between the same two hosts, in the same run.

A shared-storage guest goes h1 -> h2 -> h1 with drover, then h1 -> h2 ->
h1 with virsh (so drover's database is right again before drover's next
pair), for several rounds.  Wall time (what the operator waits: CLI to
end for drover, the virsh command for virsh: from the command's start
until it returned with the guest running on the destination, which
libvirt there confirms after each move, untimed) for each; then, in rounds
of their own (pings make the guest dirty memory, which slows a
migration), downtime measured the same way for both from outside: the
guest is pinged every 10 ms from the lab's bridge and the longest run
without replies is the downtime the network saw (libvirt's own figure is
printed for drover too; virsh gives none once the source is undefined).
Medians and ratios.

drover's command ends at the switch-over (the destination's libvirt runs
the guest); libvirt on the source then still stops its paused copy, which
virsh's command waits for (about 210 ms: libvirt looks for the stopped
QEMU 200 ms after its SIGTERM).  After each drover move the source is
watched, untimed, until its libvirt has let go of the domain (virsh's
next move back needs that); how long after drover's end that came is
printed, and so is the ratio drover would have had had it waited too
("wall_ratio_to_source_released").  Then a guest
dirtying memory faster than a bandwidth cap, with post-copy (switched at
the completion timeout) and with auto-converge: completion time and
downtime.

    .venv/bin/python bench/bench_live_migration.py [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from agent.lab.pinger import Pinger
from benchlab import api, bench_fleet, drover

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from helpers import Fleet, wait_guest  # noqa: E402
from live_helpers import agent_options  # noqa: E402

VIRSH_FLAGS = ["--live", "--p2p", "--unsafe", "--persistent",
               "--undefinesource"]


def _virsh(uri, *args):
    proc = subprocess.run(["virsh", "-q", "-c", uri, *args],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def running_on(host, uuid):
    """After a timed move (not timed): the guest runs on ``host``, as
    libvirt there says, for both tools alike."""
    state = _virsh(host["libvirt_uri"], "domstate", uuid).strip()
    if state != "running":
        raise RuntimeError(f"guest {uuid} is {state!r} on {host['name']} "
                           "after its move")


def released_by(host, uuid, timeout=30):
    """The time.perf_counter() at which ``host``'s libvirt was first seen
    without the domain."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            _virsh(host["libvirt_uri"], "domstate", uuid)
        except RuntimeError:            # no such domain any more
            return time.perf_counter()
        time.sleep(0.005)
    raise RuntimeError(f"{host['name']} still has {uuid} after {timeout} s")


def virsh_migrate(src, dst, uuid):
    start = time.perf_counter()
    _virsh(src["libvirt_uri"], "migrate", *VIRSH_FLAGS, "--migrateuri",
           f"tcp://{dst['address']}", uuid, dst["libvirt_uri"])
    took = time.perf_counter() - start
    running_on(dst, uuid)
    return took, None


def pinged(lab, address, migrate):
    """Run ``migrate()`` -> (wall, libvirt downtime) with the guest pinged
    every 10 ms; returns the longest time without a reply and libvirt's
    downtime."""
    pinger = Pinger(lab, None, address, interval=0.01)
    try:
        _wall, downtime = migrate()
    finally:
        pinger.stop()
    return pinger.longest_gap_ms, downtime


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


def compare(lab, socket, hosts, rounds):
    h1, h2 = hosts
    name = "bench-lm"
    srv = create(socket, name, h1["name"])
    ip = srv["addresses"]
    boot = wait_guest(ip)["boot"]
    # Not timed: the first move copies the image into the destination's
    # cache once (virsh's moves need it there too).
    for dst in (h2, h1):
        drover_migrate(socket, name, dst)
    results = {"drover": [], "virsh": [], "drover_down": [],
               "virsh_down": [], "released_after": []}

    def drover_move(src, dst):
        start = time.perf_counter()
        out = drover_migrate(socket, name, dst)
        running_on(dst, srv["id"])
        results["released_after"].append(
            released_by(src, srv["id"]) - start - out[0])
        return out

    moves = {
        "drover": [lambda s=src, d=dst: drover_move(s, d)
                   for src, dst in ((h1, h2), (h2, h1))],
        "virsh": [lambda s=src, d=dst: virsh_migrate(s, d, srv["id"])
                  for src, dst in ((h1, h2), (h2, h1))]}
    # Wall time unperturbed; downtime in rounds of its own, since 100
    # pings a second make the guest dirty memory and so slow a migration.
    for _ in range(rounds):
        for tool in ("drover", "virsh"):
            results[tool] += [move() for move in moves[tool]]
            _settled(socket, name, h1["name"])
    for _ in range(rounds):
        for tool in ("drover", "virsh"):
            results[f"{tool}_down"] += [pinged(lab, ip, move)
                                        for move in moves[tool]]
            _settled(socket, name, h1["name"])
    assert wait_guest(ip)["boot"] == boot, "guest rebooted"
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
        results = compare(lab, socket, hosts, args.rounds)
        busy = non_converging(fleet, socket, hosts)
    summary = {}
    for tool in ("drover", "virsh"):
        walls, downs = results[tool], results[f"{tool}_down"]
        summary[tool] = {"wall_s": _median(walls, 0),
                         "ping_gap_ms": _median(downs, 0),
                         "libvirt_downtime_ms": _median(downs, 1),
                         "wall_runs": [round(w, 3) for w, _ in walls],
                         "ping_gap_runs": [g for g, _ in downs]}
    summary["wall_ratio"] = round(summary["drover"]["wall_s"]
                                  / summary["virsh"]["wall_s"], 3)
    # How long after drover's end the source's libvirt let go (the
    # drover moves of the wall rounds only, the first 2 * rounds).
    walls = results["drover"]
    after = results["released_after"][:len(walls)]
    summary["source_released_after_s"] = {
        "median": round(statistics.median(after), 3),
        "runs": [round(a, 3) for a in after]}
    summary["wall_ratio_to_source_released"] = round(
        statistics.median(w + a for (w, _), a in zip(walls, after,
                                                        strict=True))
        / summary["virsh"]["wall_s"], 3)
    gv, gd = summary["virsh"]["ping_gap_ms"], summary["drover"]["ping_gap_ms"]
    summary["downtime_ratio"] = round(gd / gv, 3) if gv and gd else None
    summary["non_converging"] = {
        mode: {"completion_s": None if w is None else round(w, 2),
               "downtime_ms": d} for mode, (w, d) in busy.items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
