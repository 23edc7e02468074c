"""The real controller over a simulated fleet of 10, 100 and 1,000 hosts
(agent.sim.rpc_fleet: simulated agents answering the real agent RPC on
UNIX sockets, in 4 worker processes; the controller's real HostManager,
task engine, scheduler and AgentClient in this process).

Per fleet size, median and spread (max - min) of --runs runs, each on a
fresh store and fleet:

- poll: one full poll cycle (HostManager.poll_cycle, its 8 threads), in
  seconds and as a share of [controller] poll_interval (above 100%: the
  poller cannot keep its interval), and the controller's CPU per host
  polled (ms);
- boots: 200 servers created at once through the admission path, until
  the last boot task ended; then checked: all 200 ACTIVE, each running
  on the host the store says and nowhere else, no host allocated over
  its limits nor running more vCPUs than its limits allow;
- detect: 10 hosts powered off at once (their agents' sockets go) until
  the store has all 10 down, with the real poll loop running
  (poll_interval 2 s, host_down_after 6 s: the least it can be is 6 s);
- the controller's CPU seconds (this process: the sim agents are other
  processes) per poll cycle and for the 200 boots, its resident memory
  after the run (MB).

    .venv/bin/python bench/bench_fleet.py [--runs 3] [--sizes 10,100,1000]

It uses only interfaces the earlier code has too: to measure another
commit in the same session, ``git archive COMMIT | tar -x -C /tmp/old``
and run this file with ``PYTHONPATH=/tmp/old``.
"""
import argparse
import logging
import os
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.conf import CONF
from agent.controller import states
from agent.controller.db import Store, upgrade
from agent.controller.scheduler import Policy, host_limits
from agent.sim.rpc_fleet import RpcFleet

BOOTS = 200
DOWN = 10
POLL_INTERVAL, HOST_DOWN_AFTER = 2, 6
# 5 vCPUs x 4 (cpu_allocation_ratio): 20 one-vCPU guests a host, so the
# 10-host fleet is exactly full after the 200 boots.
HOST = {"vcpus": 5, "memory_mb": 65536, "disk_gb": 1000}
FLAVOR = ("bench.tiny", 1, 256, 1)


def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def configure():
    for key, value in (("poll_interval", POLL_INTERVAL),
                       ("host_down_after", HOST_DOWN_AFTER),
                       ("guest_network", "10.128.0.0/16"),
                       ("guest_address_range",
                        "10.128.0.10-10.128.250.250")):
        CONF.set_override(key, value, group="controller")


def check_boots(fleet, store):
    """Problems after the boots (empty: none)."""
    problems = []
    active = {i["uuid"]: i["host"] for i in store.list_instances()
              if i["vm_state"] == states.ACTIVE}
    if len(active) != BOOTS:
        problems.append(f"{len(active)} of {BOOTS} ACTIVE")
    running = {}
    vcpus = {}
    for host, doms in fleet.domains().items():
        for d in doms:
            if d["state"] == "running":
                if d["uuid"] in running:
                    problems.append(f"{d['uuid']} runs on two hosts")
                running[d["uuid"]] = host
                vcpus[host] = vcpus.get(host, 0) + d["vcpus"]
    if running != active:
        problems.append("the guests running differ from the store")
    limits = host_limits(HOST["vcpus"], HOST["memory_mb"], HOST["disk_gb"],
                         Policy.from_conf())
    for host, _ in fleet.hosts:
        used = store.host_usage(host)
        if used["vcpus"] > limits.vcpus or used["ram_mb"] > limits.ram_mb \
                or vcpus.get(host, 0) > limits.vcpus:
            problems.append(f"{host} oversubscribed: {used}")
    return problems


def one_run(count, tmp):
    """The figures of one run at ``count`` hosts."""
    url = f"sqlite:///{tmp}/drover.db"
    upgrade(url)
    store = Store(url)
    store.create_flavor(*FLAVOR)
    image = store.create_image("img", "/images/img", "qcow2", 1 << 30,
                               1 << 24, checksum="x")
    fleet = RpcFleet(count, f"{tmp}/sock", processes=4,
                     image_ids=[image["uuid"]], **HOST)
    fleet.start()
    out = {}
    try:
        started = time.monotonic()
        svc = fleet.controller(store)
        out["register_s"] = time.monotonic() - started
        with ThreadPoolExecutor(max_workers=8) as pool:
            cycles, cpus = [], []
            for _ in range(3):
                cpu = cpu_s()
                cycles.append(svc.hosts.poll_cycle(pool))
                cpus.append(cpu_s() - cpu)
        out["poll_s"] = statistics.median(cycles)
        out["poll_cpu_s"] = statistics.median(cpus)

        cpu, started = cpu_s(), time.monotonic()
        tasks = [svc.admission.create(f"vm{i}", FLAVOR[0], "img")[1]
                 for i in range(BOOTS)]
        for task in tasks:
            svc.engine.wait(task, timeout=600)
        out["boots_s"] = time.monotonic() - started
        out["boots_cpu_s"] = cpu_s() - cpu
        failed = [t for t in tasks if store.task_get(t)["state"] != "done"]
        problems = check_boots(fleet, store)
        if failed:
            problems.append(f"{len(failed)} boots failed: "
                            f"{store.task_get(failed[0])['error']}")
        out["problems"] = problems

        svc.hosts.start()       # the real poll loop, as the daemon runs it
        time.sleep(POLL_INTERVAL)
        victims = [name for name, _ in fleet.hosts[:DOWN]]
        started = time.monotonic()
        fleet.power_off(victims)
        deadline = started + 10 * HOST_DOWN_AFTER + 60
        while time.monotonic() < deadline:
            if store.count_hosts().get("down", 0) >= len(victims):
                break
            threading.Event().wait(0.1)
        out["detect_s"] = time.monotonic() - started
        down = {h["name"] for h in store.list_hosts()
                if h["state"] == "down"}
        if down != set(victims[:count]):
            problems.append(f"down: {sorted(down)[:5]}... not the "
                            f"{len(victims)} powered off")
        out["rss_mb"] = rss_mb()
        svc.hosts.close()
        svc.engine.shutdown(wait=True)
    finally:
        fleet.close()
        store.close()
    return out


def stat(values, fmt="{:.2f}"):
    med = statistics.median(values)
    return f"{fmt.format(med)} ±{fmt.format(max(values) - min(values))}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    configure()
    logging.basicConfig(level=logging.ERROR)    # hosts going down: expected
    print(f"median ± spread of {args.runs} runs; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; poll_interval "
          f"{POLL_INTERVAL} s, host_down_after {HOST_DOWN_AFTER} s")
    head = (f"{'hosts':>5} | {'register s':>12} | {'poll cycle s':>13} | "
            f"{'of interval':>11} | {'poll CPU s':>12} | "
            f"{'CPU ms/host':>12} | "
            f"{BOOTS} boots s".ljust(14) + f" | {'boots CPU s':>13} | "
            f"{'detect ' + str(DOWN) + ' down s':>17} | {'RSS MB':>13} | "
            "checks")
    print(head)
    print("-" * len(head))
    medians = {}
    for count in sizes:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bf") as tmp:
                runs.append(one_run(count, tmp))
        col = {k: [r[k] for r in runs] for k in runs[0] if k != "problems"}
        medians[count] = {k: statistics.median(v) for k, v in col.items()}
        problems = [p for r in runs for p in r["problems"]]
        share = [p / POLL_INTERVAL * 100 for p in col["poll_s"]]
        print(f"{count:>5} | {stat(col['register_s']):>12} | "
              f"{stat(col['poll_s'], '{:.3f}'):>13} | "
              f"{stat(share, '{:.0f}') + '%':>11} | "
              f"{stat(col['poll_cpu_s']):>12} | "
              f"{stat([c / count * 1000 for c in col['poll_cpu_s']]):>12} | "
              f"{stat(col['boots_s']):>13} | "
              f"{stat(col['boots_cpu_s']):>13} | "
              f"{stat(col['detect_s']):>17} | "
              f"{stat(col['rss_mb'], '{:.0f}'):>13} | "
              f"{'ok' if not problems else '; '.join(problems[:3])}")
    print()
    print("growth (ratio of medians from one size to the next, hosts x10):")
    for small, big in zip(sizes, sizes[1:], strict=False):
        a, b = medians[small], medians[big]
        print(f"  {small} -> {big}: " + ", ".join(
            f"{k} x{b[k] / a[k]:.1f}" for k in
            ("register_s", "poll_s", "poll_cpu_s", "boots_s",
             "boots_cpu_s", "detect_s", "rss_mb") if a[k]))


if __name__ == "__main__":
    main()
