"""Live migrations back and forth of the lab guest dirtying memory, by
drover and by ``virsh migrate``, until the guest stops answering or the
rounds run out: how many migrations the guest survives on the lab's
QEMU (``--qemu backports``, QEMU 10) and on Debian 12's own
(``--qemu system``, 7.2, which loses dirty pages of TCG guests).

Every move goes from the first host to the second with the source capped
at 24 MiB/s (several pre-copy rounds, as in the prediction tests) and
back unlimited; after each, the guest must answer its HTTP control with
the same boot id, and its console must show no kernel fault.

    .venv/bin/python bench/bench_migration_soak.py [--qemu backports|system]
        [--tool drover|virsh|both] [--moves 30] [--dirty 8] [--downtime MS]
"""
import argparse
import contextlib
import json
import os
import re
import sys
import time

from agent.conf import CONF
from benchlab import api, bench_fleet, drover

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from helpers import Fleet, wait_guest  # noqa: E402
from live_helpers import agent_options, set_dirty_rate  # noqa: E402

FAULT = re.compile(r"BUG:|Oops|general protection|Kernel panic")
BANDWIDTH_MIBS = 24


def _move(fleet, socket, tool, name, uuid, src, dst, capped):
    if tool == "drover":
        drover(socket, "server", "migrate", name, "--live-migration",
               "--host", dst, "--wait")
        return
    addr = fleet.hosts[dst]["address"]
    cap = ["--bandwidth", str(BANDWIDTH_MIBS)] if capped else []
    fleet.host_exec(src, ["virsh", "-c", "qemu:///system", "migrate",
                          "--live", "--p2p", "--persistent",
                          "--undefinesource", "--unsafe", *cap, uuid,
                          f"qemu+tcp://{addr}/system", "--migrateuri",
                          f"tcp://{addr}"], timeout=300)


def soak(fleet, socket, tool, moves, dirty, a, b):
    """Migrations the guest survived, and the fault seen (or None)."""
    name = f"soak-{tool}"
    drover(socket, "server", "create", name, "--flavor", "lab.small",
           "--image", "lab-guest", "--host", a, "--storage", "shared",
           "--wait")
    try:
        server = api(socket, "server.show", name=name)
        ip, uuid = server["addresses"], server["id"]
        boot = wait_guest(ip)["boot"]
        for host in (b, a):     # the image cached on both hosts, untimed
            drover(socket, "server", "migrate", name, "--live-migration",
                   "--host", host, "--wait")
        set_dirty_rate(ip, dirty)
        time.sleep(2.5)
        for i in range(moves):
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            _move(fleet, socket, tool, name, uuid, src, dst, src == a)
            try:
                alive = wait_guest(ip, timeout=20)["boot"] == boot
            except AssertionError:
                alive = False
            console = api(socket, "server.console_log", name=name,
                          lines=200)
            fault = next((line for line in console.splitlines()
                          if FAULT.search(line)), None)
            if not alive or fault:
                return i, fault or "the guest stopped answering"
        return moves, None
    finally:
        with contextlib.suppress(RuntimeError):
            drover(socket, "server", "delete", name, "--wait")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", choices=["backports", "system"],
                        default="backports")
    parser.add_argument("--tool", choices=["drover", "virsh", "both"],
                        default="both")
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--dirty", type=int, default=8,
                        help="MiB/s the guest rewrites (default 8)")
    parser.add_argument("--downtime", type=int, metavar="MS",
                        help="drover's allowed downtime, fixed (default: "
                             "the agents' own steps, from 50 ms); virsh "
                             "leaves QEMU's 300 ms")
    args = parser.parse_args()
    CONF.set_override("qemu", args.qemu, "lab")
    tools = ("drover", "virsh") if args.tool == "both" else (args.tool,)
    # The agents refuse to live-migrate TCG guests on QEMU < 9.0: this
    # benchmark is there to show why, so it lets them.
    permit = {"permit_tcg_dirty_page_loss": True} \
        if args.qemu == "system" else {}
    if args.downtime:
        permit.update(downtime=args.downtime, downtime_max=args.downtime,
                      downtime_steps=1)
    results = {}
    with bench_fleet("dsoak", "198.18.108.0/24", hosts=2) as (lab, socket):
        fleet = Fleet(lab, socket)
        a, b = sorted(fleet.hosts)
        version = fleet.host_exec(a, ["qemu-system-x86_64", "--version"])
        with agent_options(fleet, a, bandwidth=BANDWIDTH_MIBS, **permit), \
                agent_options(fleet, b, **permit):
            for tool in tools:
                survived, fault = soak(fleet, socket, tool, args.moves,
                                       args.dirty, a, b)
                results[tool] = {"moves": args.moves, "survived": survived,
                                 "fault": fault}
                print(tool, json.dumps(results[tool]), file=sys.stderr)
    print(json.dumps({"qemu": version.splitlines()[0],
                      "dirty_mibs": args.dirty,
                      "drover_downtime_ms": args.downtime or "steps from 50",
                      "results": results},
                     indent=1))


if __name__ == "__main__":
    main()
