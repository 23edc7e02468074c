"""drover server group create|list|show|delete (Nova's server groups).

A group's policy applies wherever one of its members is placed: boot
(``server create --hint group=NAME``), migrations, evacuation, drain and
rebalancing.  affinity: all on one host; anti-affinity: no two on one
host (``--rule max_server_per_host=N``: at most N); soft-affinity and
soft-anti-affinity: preferred, never refused."""
from agent.cli.common import parse_properties, subcommand

POLICIES = ("affinity", "anti-affinity", "soft-affinity",
            "soft-anti-affinity")
LIST_COLUMNS = ["ID", "Name", "Policy", "Rules", "Members"]


def _create(c, a):
    return c.call("server_group.create", name=a.name, policy=a.policy,
                  rules=parse_properties(a.rule))


def register_server(sub):
    """Add ``group`` under ``drover server``."""
    p = sub.add_parser("group", help="server groups", description=__doc__)
    gsub = p.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(gsub, "create", _create, "create a server group",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--policy", required=True, choices=POLICIES)
    s.add_argument("--rule", action="append", metavar="KEY=VALUE",
                   help="max_server_per_host=N (anti-affinity only)")
    subcommand(gsub, "list",
               lambda c, a: (c.call("server_group.list"), LIST_COLUMNS),
               "list server groups", formatted=True)
    s = subcommand(gsub, "show",
                   lambda c, a: c.call("server_group.show", name=a.name),
                   "show a server group and its members", formatted=True)
    s.add_argument("name")
    s = subcommand(gsub, "delete",
                   lambda c, a: c.call("server_group.delete", name=a.name),
                   "delete a server group (its members stay where they "
                   "are, in no group)")
    s.add_argument("name")
