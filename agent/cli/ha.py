"""drover ha status: the HA instances, where they run, how often they
were restarted or relocated automatically, and their last recovery."""
from agent.cli.common import subcommand

STATUS_COLUMNS = ["ID", "Name", "Status", "Host", "Priority", "Restarts",
                  "Relocations", "Last Recovery", "Reason"]


def register(subparsers):
    p = subparsers.add_parser("ha", help="automatic recovery")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    subcommand(sub, "status",
               lambda c, a: (c.call("ha.status"), STATUS_COLUMNS),
               "list HA instances: state, host, restarts, last recovery",
               formatted=True)
