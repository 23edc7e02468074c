"""drover fleet audit: does the database match the hosts?

Like ``nova-manage placement audit`` it changes nothing: it lists orphan
domains (on a host, no instance there), missing domains and directories,
guests running in two places or elsewhere than the database says, claims
that do not match what runs, instance directories no instance or
migration owns, and hosts it could not ask.  Exit 0 when the fleet is
consistent, 1 when anything is off."""
from agent.cli import output
from agent.cli.client import connect

COLUMNS = ["Kind", "Host", "Instance", "Detail"]


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


def register(subparsers):
    p = subparsers.add_parser("fleet", help="the fleet as a whole")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("audit", help="compare the database with what the "
                       "hosts run and hold (changes nothing; exit 1 if "
                       "anything is off)", description=__doc__)
    output.add_format_args(s)
    s.set_defaults(func=_audit)
