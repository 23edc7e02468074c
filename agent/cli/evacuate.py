"""drover server evacuate, host evacuate: rebuild the instances of a
failed host (fenced or set down) on other hosts.

Registered into the ``server`` and ``host`` verbs by agent.cli.server and
agent.cli.host."""
from agent.cli.common import finish, subcommand, wait_task

REPORT_COLUMNS = ["Server", "Result", "Destination", "Reason"]
REBUILD_HELP = ("a guest on local storage: rebuild it from its image (same "
                "id, name, flavor, MAC and address; its disk is fresh: the "
                "data on the failed host's local disk is lost)")


def _server(c, a):
    result = c.call("server.evacuate", name=a.name, host=a.host,
                    rebuild=a.rebuild)
    return finish(c, a, result, f"evacuate {a.name}")


def _host(c, a):
    result = c.call("host.evacuate", name=a.name,
                    max_parallel=a.max_parallel, rebuild=a.rebuild)
    if not a.wait:
        return result
    task = wait_task(c, result["task_id"], f"evacuate {a.name}",
                     raise_on_failure=False)
    return c.call("host.evacuate_report", task_id=task["id"]), \
        REPORT_COLUMNS


def register_server(sub):
    s = subcommand(sub, "evacuate", _server,
                   "rebuild an instance of a failed host (fenced or set "
                   "down) on another host", formatted=True)
    s.add_argument("name")
    s.add_argument("--host", help="destination (still checked by the "
                                  "scheduler's filters)")
    s.add_argument("--rebuild", action="store_true", help=REBUILD_HELP)
    s.add_argument("--wait", action="store_true",
                   help="wait until done, showing progress")


def register_host(sub):
    s = subcommand(sub, "evacuate", _host,
                   "evacuate every instance of a failed host (fenced or "
                   "set down)", formatted=True)
    s.add_argument("name")
    s.add_argument("--max-parallel", type=int, default=2, metavar="N",
                   help="evacuations at a time (default 2)")
    s.add_argument("--rebuild", action="store_true", help=REBUILD_HELP)
    s.add_argument("--wait", action="store_true",
                   help="wait, showing progress, then print the report: "
                        "evacuated, failed, left behind")
