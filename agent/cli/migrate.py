"""drover server migrate|resize, server resize confirm|revert,
server migration list|show|abort|force-complete, host drain.

Registered into the ``server`` and ``host`` verbs by agent.cli.server and
agent.cli.host."""
import argparse

from agent.cli.common import finish, subcommand
from agent.common.errors import InvalidInput

MIGRATION_COLUMNS = ["Id", "Type", "Source Host", "Dest Host", "Status",
                     "Progress", "Created At", "Updated At"]
DRAIN_COLUMNS = ["Server", "Result", "Destination", "Reason"]


def _migrate(c, a):
    if a.dry_run:
        if not a.live_migration:
            raise InvalidInput("--dry-run goes with --live-migration")
        return c.call("server.migrate", name=a.name, host=a.host,
                      live=True, block=a.block_migration, dry_run=True)
    params = {"predict": True} if a.predict else {}
    result = c.call("server.migrate", name=a.name, host=a.host,
                    live=a.live_migration, block=a.block_migration, **params)
    return finish(c, a, result, f"migrate {a.name}")


def _resize(c, a):
    """``resize NAME --flavor F`` or ``resize confirm|revert NAME``."""
    if a.target in ("confirm", "revert") and a.name:
        method = f"server.resize_{a.target}"
        return finish(c, a, c.call(method, name=a.name),
                       f"resize {a.target} {a.name}")
    if a.name:
        raise InvalidInput("usage: server resize NAME --flavor FLAVOR | "
                           "server resize confirm|revert NAME")
    if not a.flavor:
        raise InvalidInput("server resize needs --flavor")
    a.name = a.target
    return finish(c, a, c.call("server.resize", name=a.target,
                                flavor=a.flavor), f"resize {a.target}")


def register_server(sub):
    s = subcommand(sub, "migrate", _migrate,
                   "move an instance to another host (cold by default)",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--host", help="destination (still checked by the "
                                  "scheduler's filters)")
    s.add_argument("--live-migration", action="store_true",
                   help="move it while it runs")
    s.add_argument("--block-migration", action="store_true", default=None,
                   help="with --live-migration: copy its local disks too "
                        "(default: when storage is not shared)")
    s.add_argument("--dry-run", action="store_true",
                   help="with --live-migration: measure the guest now and "
                        "print the predicted duration, downtime and "
                        "verdict; changes nothing")
    s.add_argument("--predict", action="store_true",
                   help="with --live-migration: store the prediction in "
                        "the migration record first (about 1 s more)")
    s.add_argument("--wait", action="store_true",
                   help="wait until done, showing progress")

    s = subcommand(sub, "resize", _resize,
                   "resize to another flavor; then resize confirm or "
                   "revert", formatted=True)
    s.add_argument("target", metavar="NAME|confirm|revert")
    s.add_argument("name", nargs="?", help=argparse.SUPPRESS)
    s.add_argument("--flavor", help="the new flavor")
    s.add_argument("--wait", action="store_true",
                   help="wait until done, showing progress")

    mig = sub.add_parser("migration", help="migrations of instances")
    msub = mig.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(msub, "list",
                   lambda c, a: (c.call("migration.list", name=a.name,
                                        host=a.host), MIGRATION_COLUMNS),
                   "list migrations (newest first)", formatted=True)
    s.add_argument("name", nargs="?", help="only this instance's")
    s.add_argument("--host", help="only those from or to this host")
    s = subcommand(msub, "show",
                   lambda c, a: c.call("migration.show", name=a.name,
                                       id=a.id),
                   "show an instance's migration (the latest by default)",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("id", nargs="?", help="migration id")
    for verb, text in (("abort", "cancel a live migration in progress"),
                       ("force-complete", "make a live migration finish "
                        "now (post-copy, or pause the guest)")):
        method = "migration." + verb.replace("-", "_")
        s = subcommand(msub, verb,
                       lambda c, a, m=method: c.call(m, name=a.name),
                       text, formatted=True)
        s.add_argument("name")


PLAN_COLUMNS = ["Server", "Source", "Destination", "Verdict", "Duration s",
                "Downtime ms", "Reason"]


def _drain(c, a):
    if a.dry_run:
        return c.call("host.drain", name=a.name, dry_run=True), PLAN_COLUMNS
    result = c.call("host.drain", name=a.name, max_parallel=a.max_parallel)
    if a.wait:
        from agent.cli.common import wait_task
        task = wait_task(c, result["task_id"], f"drain {a.name}",
                         raise_on_failure=False)
        report = c.call("host.drain_report", task_id=task["id"])
        return report, DRAIN_COLUMNS
    return result


def register_host(sub):
    s = subcommand(sub, "drain", _drain,
                   "disable a host and live-migrate every instance away",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--max-parallel", type=int, default=2, metavar="N",
                   help="migrations at a time (default 2)")
    s.add_argument("--dry-run", action="store_true",
                   help="print each move with its destination and "
                        "prediction; changes nothing")
    s.add_argument("--wait", action="store_true",
                   help="wait, showing progress, then print the report")

