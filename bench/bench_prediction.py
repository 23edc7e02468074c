"""Migration prediction: predicted and actual duration and downtime of
a live migration of the lab guest dirtying memory at 5 rates.

The source agent caps the migration bandwidth (so that the rates span
converging and not) and aborts at a short completion timeout; for each
rate, ``server migrate --live-migration --dry-run`` predicts, then the
migration runs (``--predict``) and its record gives the job's actual
duration and libvirt's downtime; the guest goes back with the
destination's own policy (not measured).  Error = predicted / actual
- 1, per run; medians and spreads over ``--runs``.

    .venv/bin/python bench/bench_prediction.py [--runs 3]
"""
import argparse
import json
import os
import statistics
import sys
import time

from benchlab import api, bench_fleet, drover

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from helpers import Fleet, guest_status, wait_guest  # noqa: E402
from live_helpers import agent_options, set_dirty_rate  # noqa: E402

RATES = (0, 4, 8, 16, 64)
BANDWIDTH_MIBS = 24         # as tests/integration/test_prediction_lab.py
TIMEOUT_S_PER_GB = 6


def one(socket, name, src, dst, achieved):
    pred = api(socket, "server.migrate", name=name, host=dst, live=True,
               dry_run=True)
    try:
        drover(socket, "server", "migrate", name, "--live-migration",
               "--host", dst, "--predict", "--wait")
        ok = True
    except RuntimeError:
        ok = False
    mig = api(socket, "migration.show", name=name)
    progress = mig.get("progress") or {}
    if ok:
        drover(socket, "server", "migrate", name, "--live-migration",
               "--host", src, "--wait")
    actual = progress.get("elapsed") if ok else None
    return {"verdict": pred["Verdict"], "outcome": mig["status"],
            "predicted_s": pred["Duration s"], "actual_s": actual,
            "predicted_downtime_ms": pred["Downtime ms"],
            "actual_downtime_ms": progress.get("downtime_ms") if ok else None,
            "dirty_mibs": pred["Dirty MiB/s"],
            "achieved_mibs": achieved,
            "non_zero_mib": pred["Non-zero MiB"]}


def _error(p, a):
    return None if p is None or not a else round(p / a - 1, 3)


def summarize(runs):
    out = {}
    for rate, rows in runs.items():
        errors = [_error(r["predicted_s"], r["actual_s"]) for r in rows]
        errors = [e for e in errors if e is not None]
        out[rate] = {
            "verdicts": [r["verdict"] for r in rows],
            "outcomes": [r["outcome"] for r in rows],
            "verdict_right": all((r["verdict"] in ("precopy",
                                                   "auto-converge"))
                                 == (r["outcome"] == "completed")
                                 for r in rows),
            "predicted_s": [r["predicted_s"] for r in rows],
            "actual_s": [r["actual_s"] for r in rows],
            "duration_error_median": statistics.median(errors)
            if errors else None,
            "duration_error_spread": [min(errors), max(errors)]
            if errors else None,
            "predicted_downtime_ms": [r["predicted_downtime_ms"]
                                      for r in rows],
            "actual_downtime_ms": [r["actual_downtime_ms"] for r in rows],
            "measured_dirty_mibs": [r["dirty_mibs"] for r in rows],
            # What the guest's workload says it wrote (it reports a rate
            # it could not reach rather than pretend).
            "achieved_dirty_mibs": [r["achieved_mibs"] for r in rows],
            "non_zero_mib": [r["non_zero_mib"] for r in rows]}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = {rate: [] for rate in RATES}
    unreachable = []
    with bench_fleet("dprb", "198.18.106.0/24", hosts=2) as (lab, socket):
        fleet = Fleet(lab, socket)
        src, dst = sorted(h["name"] for h in lab.status())
        name = "bench-pred"
        drover(socket, "server", "create", name, "--flavor", "lab.small",
               "--image", "lab-guest", "--host", src, "--storage", "shared",
               "--wait")
        ip = api(socket, "server.show", name=name)["addresses"]
        wait_guest(ip)
        # The destination's image cache filled once, not timed.
        for host in (dst, src):
            drover(socket, "server", "migrate", name, "--live-migration",
                   "--host", host, "--wait")
        with agent_options(fleet, src, bandwidth=BANDWIDTH_MIBS,
                           completion_timeout=TIMEOUT_S_PER_GB):
            for _ in range(args.runs):
                for rate in RATES:
                    try:
                        set_dirty_rate(ip, rate)
                        time.sleep(2.5)
                        achieved = float(guest_status(ip)["dirty_achieved"])
                    except OSError as err:
                        # Said, not hidden: the guest stopped answering.
                        console = api(socket, "server.console_log",
                                      name=name, lines=15)
                        print(f"guest unreachable at {rate} MiB/s: {err}\n"
                              f"{console}", file=sys.stderr)
                        unreachable.append(rate)
                        continue
                    runs[rate].append(one(socket, name, src, dst, achieved))
                    print(rate, json.dumps(runs[rate][-1]), file=sys.stderr)
    print(json.dumps({"bandwidth_mibs": BANDWIDTH_MIBS,
                      "guest_unreachable_at_mibs": unreachable,
                      "rates_mibs": summarize(runs)}, indent=1))


if __name__ == "__main__":
    main()
