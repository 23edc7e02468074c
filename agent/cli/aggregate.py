"""drover aggregate ... and drover availability zone list"""
from agent.cli.common import parse_properties, subcommand

COLUMNS = ["Name", "Availability Zone", "Hosts", "Properties"]


def _create(c, a):
    return c.call("aggregate.create", name=a.name, zone=a.zone,
                  properties=parse_properties(a.property))


def _set(c, a):
    return c.call("aggregate.set", name=a.name, zone=a.zone,
                  properties=parse_properties(a.property))


def register(subparsers):
    p = subparsers.add_parser("aggregate", help="host aggregates")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "create", _create, "create an aggregate",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--zone", help="availability zone of its hosts")
    s.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="metadata matched against flavor properties")
    s = subcommand(sub, "delete",
                   lambda c, a: c.call("aggregate.delete", name=a.name),
                   "delete an aggregate (it must have no hosts)")
    s.add_argument("name")
    subcommand(sub, "list",
               lambda c, a: (c.call("aggregate.list"), COLUMNS),
               "list aggregates", formatted=True)
    s = subcommand(sub, "show",
                   lambda c, a: c.call("aggregate.show", name=a.name),
                   "show an aggregate", formatted=True)
    s.add_argument("name")
    s = subcommand(sub, "set", _set, "set metadata or zone", formatted=True)
    s.add_argument("name")
    s.add_argument("--zone")
    s.add_argument("--property", action="append", metavar="KEY=VALUE")
    s = subcommand(sub, "unset",
                   lambda c, a: c.call("aggregate.unset", name=a.name,
                                       keys=a.property or []),
                   "remove metadata keys", formatted=True)
    s.add_argument("name")
    s.add_argument("--property", action="append", metavar="KEY",
                   required=True)
    for verb, method in (("add", "aggregate.add_host"),
                         ("remove", "aggregate.remove_host")):
        vp = sub.add_parser(verb, help=f"{verb} a host")
        vsub = vp.add_subparsers(dest="what", metavar="host", required=True)
        s = subcommand(vsub, "host",
                       lambda c, a, m=method: c.call(m, name=a.aggregate,
                                                     host=a.host),
                       f"{verb} a host", formatted=True)
        s.add_argument("aggregate")
        s.add_argument("host")

    z = subparsers.add_parser("availability", help="availability zones")
    zsub = z.add_subparsers(dest="what", metavar="zone", required=True)
    zp = zsub.add_parser("zone", help="availability zones")
    zzsub = zp.add_subparsers(dest="action", metavar="ACTION",
                              required=True)
    subcommand(zzsub, "list",
               lambda c, a: (c.call("az.list"),
                             ["Zone Name", "Zone Status", "Hosts"]),
               "list availability zones", formatted=True)
