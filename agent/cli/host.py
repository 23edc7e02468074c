"""drover host list|show|enable|disable|drain|evacuate"""
from agent.cli.common import subcommand

LIST_COLUMNS = ["Name", "Address", "State", "Status", "Zone", "vCPUs",
                "vCPUs Used", "RAM MB", "RAM MB Used", "Instances"]
# Also in -f json and with --long.
LONG_COLUMNS = LIST_COLUMNS + ["Last Seen", "Down Reason"]


def _list(client, args):
    long = args.long or args.format == "json"
    return client.call("host.list"), LONG_COLUMNS if long else LIST_COLUMNS


def register(subparsers):
    p = subparsers.add_parser("host", help="hypervisor hosts")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "list", _list, "list hosts", formatted=True)
    s.add_argument("--long", action="store_true",
                   help="also when each host was last seen and why it "
                        "is down")
    s = subcommand(sub, "show",
                   lambda c, a: c.call("host.show", name=a.name),
                   "show a host", formatted=True)
    s.add_argument("name")
    s = subcommand(sub, "enable",
                   lambda c, a: c.call("host.enable", name=a.name),
                   "let the scheduler place instances on a host",
                   formatted=True)
    s.add_argument("name")
    s = subcommand(sub, "disable",
                   lambda c, a: c.call("host.disable", name=a.name,
                                       reason=a.reason),
                   "stop placing instances on a host", formatted=True)
    s.add_argument("name")
    s.add_argument("--reason", default=None, help="why (shown in host show)")
    s = subcommand(sub, "add",
                   lambda c, a: c.call("host.add", name=a.name,
                                       address=a.address),
                   "register a host whose agent runs and whose SSH key is "
                   "in [ssh] known_hosts", formatted=True)
    s.add_argument("name")
    s.add_argument("--address", required=True, help="its SSH address")
    s = subcommand(sub, "delete",
                   lambda c, a: c.call("host.delete", name=a.name),
                   "forget a host that has no instances")
    s.add_argument("name")

    from agent.cli import evacuate, migrate
    migrate.register_host(sub)
    evacuate.register_host(sub)
