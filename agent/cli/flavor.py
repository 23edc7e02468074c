"""drover flavor create|list|show|delete"""
from agent.cli.common import parse_properties, subcommand

COLUMNS = ["Name", "vCPUs", "RAM", "Disk", "Properties"]


def _create(c, a):
    return c.call("flavor.create", name=a.name, vcpus=a.vcpus, ram_mb=a.ram,
                  disk_gb=a.disk, properties=parse_properties(a.property))


def register(subparsers):
    p = subparsers.add_parser("flavor", help="flavors (instance sizes)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "create", _create, "create a flavor", formatted=True)
    s.add_argument("name")
    s.add_argument("--vcpus", type=int, default=1)
    s.add_argument("--ram", type=int, required=True, help="RAM in MiB")
    s.add_argument("--disk", type=int, default=1, help="disk in GiB")
    s.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="matched against aggregate metadata")
    subcommand(sub, "list", lambda c, a: (c.call("flavor.list"), COLUMNS),
               "list flavors", formatted=True)
    s = subcommand(sub, "show", lambda c, a: c.call("flavor.show",
                                                    name=a.name),
                   "show a flavor", formatted=True)
    s.add_argument("name")
    s = subcommand(sub, "delete", lambda c, a: c.call("flavor.delete",
                                                      name=a.name),
                   "delete a flavor")
    s.add_argument("name")
    s = subcommand(sub, "set",
                   lambda c, a: c.call("flavor.set", name=a.name,
                                       properties=parse_properties(
                                           a.property)),
                   "set properties (matched against aggregate metadata)",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--property", action="append", metavar="KEY=VALUE",
                   required=True)
    s = subcommand(sub, "unset",
                   lambda c, a: c.call("flavor.unset", name=a.name,
                                       keys=a.property),
                   "remove properties", formatted=True)
    s.add_argument("name")
    s.add_argument("--property", action="append", metavar="KEY",
                   required=True)
