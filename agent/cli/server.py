"""drover server create|list|show|delete|stop|start|reboot|rescue|
unrescue, server event
list, server console log (migrate, resize: agent.cli.migrate; evacuate:
agent.cli.evacuate; image create, shelve, unshelve: agent.cli.snapshot;
server group: agent.cli.groups)"""
from agent.cli.common import finish, parse_properties, subcommand

LIST_COLUMNS = ["ID", "Name", "Status", "Host", "Host Status", "Networks",
                "Flavor", "Image"]
EVENT_COLUMNS = ["Request ID", "Action", "Start Time", "Finish Time",
                 "Result", "Message"]
DRY_RUN_COLUMNS = ["Host", "Result", "Weight", "Filter", "Reason"]


def _create(c, a):
    params = dict(name=a.name, flavor=a.flavor, image=a.image,
                  availability_zone=a.availability_zone, host=a.host,
                  storage=a.storage, metadata=parse_properties(a.property),
                  hints=parse_properties(a.hint))
    if a.dry_run:
        return (c.call("server.create", dry_run=True, **params),
                DRY_RUN_COLUMNS)
    return finish(c, a, c.call("server.create", **params),
                   f"create {a.name}")


def _action(method, what):
    def run(c, a):
        extra = {"hard": a.hard} if hasattr(a, "hard") else {}
        if getattr(a, "image", None):
            extra["image"] = a.image
        return finish(c, a, c.call(method, name=a.name, **extra),
                       f"{what} {a.name}")
    return run


def register(subparsers):
    p = subparsers.add_parser("server", help="instances")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    s = subcommand(sub, "create", _create, "boot an instance",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--flavor", required=True)
    s.add_argument("--image", required=True)
    s.add_argument("--availability-zone", help="zone to boot in")
    s.add_argument("--host", help="boot on this host (still filtered)")
    s.add_argument("--storage", choices=["local", "shared"],
                   default="local",
                   help="keep the instance directory on the host's local "
                        "disk or on shared storage")
    s.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="guest metadata, passed as SMBIOS OEM strings")
    s.add_argument("--hint", action="append", metavar="KEY=VALUE",
                   help="scheduler hint: group=NAME puts the instance in "
                        "that server group")
    s.add_argument("--dry-run", action="store_true",
                   help="show every host with the filter that rejected it "
                        "or its weight; boot nothing")
    s.add_argument("--wait", action="store_true",
                   help="wait until ACTIVE or failed, showing progress")

    subcommand(sub, "list",
               lambda c, a: (c.call("server.list"), LIST_COLUMNS),
               "list instances", formatted=True)
    s = subcommand(sub, "show",
                   lambda c, a: c.call("server.show", name=a.name),
                   "show an instance", formatted=True)
    s.add_argument("name")

    for verb, method, text in (
            ("delete", "server.delete", "delete an instance"),
            ("stop", "server.stop", "shut an instance down"),
            ("start", "server.start", "start a stopped instance"),
            ("reboot", "server.reboot", "reboot an instance"),
            ("rescue", "server.rescue", "boot an instance's rescue system, "
             "its own disk attached"),
            ("unrescue", "server.unrescue", "boot a rescued instance from "
             "its own disk again")):
        s = subcommand(sub, verb, _action(method, verb), text,
                       formatted=True)
        s.add_argument("name")
        s.add_argument("--wait", action="store_true",
                       help="wait until done, showing progress")
        if verb == "reboot":
            s.add_argument("--hard", action="store_true",
                           help="power-cycle instead of a guest reboot")
        if verb == "rescue":
            s.add_argument("--image",
                           help="rescue image (default: [compute] "
                                "rescue_image, else the instance's own)")

    ev = sub.add_parser("event", help="instance actions")
    evsub = ev.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(evsub, "list",
                   lambda c, a: (c.call("server.events", name=a.name),
                                 EVENT_COLUMNS),
                   "list an instance's actions and their result",
                   formatted=True)
    s.add_argument("name")

    con = sub.add_parser("console", help="serial console")
    consub = con.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(consub, "log",
                   lambda c, a: c.call("server.console_log", name=a.name,
                                       lines=a.lines),
                   "print the instance's serial console log")
    s.add_argument("name")
    s.add_argument("--lines", type=int, default=50,
                   help="last N lines (default 50; 0 for all)")

    from agent.cli import evacuate, groups, migrate, snapshot
    migrate.register_server(sub)
    evacuate.register_server(sub)
    snapshot.register_server(sub)
    groups.register_server(sub)
