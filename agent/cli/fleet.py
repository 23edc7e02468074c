"""drover fleet audit | load | rebalance

drover fleet audit: does the database match the hosts?

Like ``nova-manage placement audit`` it changes nothing: it lists orphan
domains (on a host, no instance there), missing domains and directories,
guests running in two places or elsewhere than the database says, claims
that do not match what runs, instance directories no instance or
migration owns, and hosts it could not ask.  Exit 0 when the fleet is
consistent, 1 when anything is off."""
import argparse
import json

from agent.cli import output
from agent.cli.client import connect
from agent.cli.common import subcommand, wait_task
from agent.common.errors import InvalidInput

COLUMNS = ["Kind", "Host", "Instance", "Detail"]
LOAD_COLUMNS = ["Host", "vCPUs", "Guests", "Guest CPU", "Guest Memory MB",
                "Host CPU Busy"]
SERVER_LOAD_COLUMNS = ["Server", "Host", "CPU", "Memory MB"]
PLAN_COLUMNS = ["Server", "Source", "Destination", "Source Load",
                "Destination Load", "Predicted Time", "Predicted Downtime"]
REPORT_COLUMNS = ["Server", "Result", "Destination", "Reason"]
REBALANCE_HELP = """Even out the fleet's load with live migrations.

--dry-run (the default) prints the plan and changes nothing: each move
with the load of both hosts before and after it and its predicted time
and downtime ("-": not predicted), and the imbalance score before and
after (the capacity-weighted spread of host load fractions, 0 = even, as
Ganeti's hbal).  Moves respect availability zones, aggregates, server
groups, disabled and down hosts and capacity (the scheduler's filters).
--execute runs the plan (exit 1 if a move failed)."""


def _audit(args):
    with connect(args) as client:
        findings = client.call("fleet.audit")
    rows = [{"Kind": f["kind"], "Host": f["host"],
             "Instance": f["instance"], "Detail": f["detail"]}
            for f in findings]
    if rows or args.format != "table":
        output.emit(output.format_list(rows, COLUMNS, args.format,
                                       args.column))
    else:
        print("The fleet matches the database: nothing found.")
    return 1 if rows else 0


def _print_plan(plan, args):
    if args.format != "table":
        output.emit(output.format_show(plan, args.format, args.column))
        return
    print(f"metric {plan['metric']}: score {plan['score_before']:.3f} -> "
          f"{plan['score_after']:.3f} with {len(plan['moves'])} move(s)")
    if plan["moves"]:
        output.emit(output.format_list(plan["moves"], PLAN_COLUMNS, "table",
                                       args.column))
    print(f"({plan['reason']})")


def _print_report(report, args):
    if args.format != "table":
        output.emit(json.dumps(report, indent=2))
        return
    if report["moves"]:
        output.emit(output.format_list(report["moves"], REPORT_COLUMNS,
                                       "table", args.column))
    moved = sum(r["Result"] == "moved" for r in report["moves"])
    failed = sum(r["Result"] == "failed" for r in report["moves"])
    print(f"{moved} moved, {failed} failed; score "
          f"{_score(report['score_before'])} -> "
          f"{_score(report['score_after'])}")


def _score(value):
    return "-" if value is None else f"{value:.3f}"


def _rebalance(args):
    if sum((args.execute, args.dry_run, args.status)) > 1:
        raise InvalidInput("--dry-run, --execute and --status exclude each "
                           "other")
    if args.status:
        with connect(args) as client:
            status = client.call("fleet.rebalance_status")
        output.emit(output.format_show(status, args.format, args.column))
        return 0
    params = dict(metric=args.metric, threshold=args.threshold,
                  max_moves=args.max_moves, max_parallel=args.max_parallel)
    with connect(args) as client:
        if not args.execute:
            _print_plan(client.call("fleet.rebalance", dry_run=True,
                                    **params), args)
            return 0
        task_id = client.call("fleet.rebalance", dry_run=False,
                              **params)["task_id"]
        if not args.wait:
            output.emit(output.format_show({"task_id": task_id},
                                           args.format, args.column))
            return 0
        task = wait_task(client, task_id, "rebalance",
                         raise_on_failure=False)
        report = client.call("fleet.rebalance_report", task_id=task["id"])
    _print_report(report, args)
    failed = any(r["Result"] != "moved" for r in report["moves"])
    return 1 if failed or task["state"] != "done" else 0


def register(subparsers):
    p = subparsers.add_parser("fleet", help="the fleet as a whole")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("audit", help="compare the database with what the "
                       "hosts run and hold (changes nothing; exit 1 if "
                       "anything is off)", description=__doc__)
    output.add_format_args(s)
    s.set_defaults(func=_audit)
    s = subcommand(sub, "load", lambda c, a: (
        c.call("fleet.load", servers=a.servers),
        SERVER_LOAD_COLUMNS if a.servers else LOAD_COLUMNS),
        "the measured load of each host (its guests' CPU cores and "
        "memory, averaged over [rebalance] load_window)", formatted=True)
    s.add_argument("--servers", action="store_true",
                   help="per server instead of per host")
    s = sub.add_parser("rebalance", help="even out the load with live "
                       "migrations (a dry run unless --execute)",
                       description=REBALANCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    output.add_format_args(s)
    s.add_argument("--dry-run", action="store_true",
                   help="print the plan, change nothing (the default)")
    s.add_argument("--execute", action="store_true",
                   help="run the plan's live migrations")
    s.add_argument("--status", action="store_true",
                   help="what automatic rebalancing ([rebalance] enabled) "
                        "decided in its last round, and why")
    s.add_argument("--metric", choices=["cpu", "ram", "allocated"],
                   default="cpu", help="what to balance (default cpu)")
    s.add_argument("--threshold", type=float, metavar="T",
                   help="plan moves only while the score is above T "
                        "(default [rebalance] threshold)")
    s.add_argument("--max-moves", type=int, default=5, metavar="N",
                   help="at most N moves (default 5)")
    s.add_argument("--max-parallel", type=int, default=2, metavar="N",
                   help="with --execute: migrations at a time (default 2)")
    s.add_argument("--wait", action="store_true",
                   help="with --execute: wait, showing progress, then "
                        "print the report")
    s.set_defaults(func=_rebalance)
