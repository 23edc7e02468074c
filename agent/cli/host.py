"""drover host list|show|enable|disable|set|fence|drain|evacuate, host
event list"""
from agent.cli.common import subcommand, wait_task
from agent.common.errors import InvalidInput

LIST_COLUMNS = ["Name", "Address", "State", "Status", "Zone", "vCPUs",
                "vCPUs Used", "RAM MB", "RAM MB Used", "Instances"]
EVENT_COLUMNS = ["Time", "Event", "Result", "Details"]
# Also in -f json and with --long.
LONG_COLUMNS = LIST_COLUMNS + ["Last Seen", "Fence Agent", "Reason",
                               "Down Reason"]


def _list(client, args):
    long = args.long or args.format == "json"
    return client.call("host.list"), LONG_COLUMNS if long else LIST_COLUMNS


def _fence_options(pairs):
    """``key=value`` strings to a dict; the error never repeats what was
    given (it may hold a password)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput("bad --fence-option: expected KEY=VALUE")
        options[key] = value
    return options


def _set(c, a):
    """``host set``: the fence method first, then --down or --up."""
    if a.fence_option and not a.fence_agent:
        raise InvalidInput("--fence-option needs --fence-agent")
    if not (a.down or a.up or a.fence_agent or a.no_fence):
        raise InvalidInput("host set needs --down, --up, --fence-agent or "
                           "--no-fence")
    result = None
    if a.fence_agent or a.no_fence:
        result = c.call("host.set_fence", name=a.name,
                        agent=None if a.no_fence else a.fence_agent,
                        options=_fence_options(a.fence_option))
    if a.down:
        result = c.call("host.set_down", name=a.name)
    elif a.up:
        result = c.call("host.set_up", name=a.name)
    return result


def _fence(c, a):
    result = c.call("host.fence", name=a.name)
    if a.wait:
        wait_task(c, result["task_id"], f"fence {a.name}")
        return c.call("host.show", name=a.name)
    return result


def _register_fencing(sub):
    s = subcommand(sub, "set", _set,
                   "declare a host off or back (as Nova's forced-down), "
                   "or set its fence method", formatted=True)
    s.add_argument("name")
    state = s.add_mutually_exclusive_group()
    state.add_argument("--down", action="store_true",
                       help="the operator declares the host off: it is "
                            "down for the scheduler and may be evacuated")
    state.add_argument("--up", action="store_true",
                       help="clear --down and a fence (refused while "
                            "evacuations from it are unfinished); the "
                            "host is up again once the controller reaches "
                            "it and has cleaned it")
    method = s.add_mutually_exclusive_group()
    method.add_argument("--fence-agent", metavar="AGENT",
                        help="its ClusterLabs fence agent: a name such as "
                             "fence_ipmilan (from [fencing] agent_dirs) or "
                             "an absolute path")
    method.add_argument("--no-fence", action="store_true",
                        help="forget its fence method")
    s.add_argument("--fence-option", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="an option of the fence agent (repeatable), as on "
                        "its stdin: ip=..., username=..., plug=...; "
                        "password values are never shown (prefer "
                        "password_script=PATH: a command line is visible "
                        "to local users while it runs)")
    s = subcommand(sub, "fence", _fence,
                   "power a host off with its fence agent (action=off, "
                   "then status until off); the host is then fenced",
                   formatted=True)
    s.add_argument("name")
    s.add_argument("--wait", action="store_true",
                   help="wait until the agent reports the host off, "
                        "showing progress")


def register(subparsers):
    p = subparsers.add_parser("host", help="hypervisor hosts")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "list", _list, "list hosts", formatted=True)
    s.add_argument("--long", action="store_true",
                   help="also when each host was last seen, its fence "
                        "agent, and why it is down, fenced or disabled")
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

    _register_fencing(sub)

    ev = sub.add_parser("event", help="what automatic recovery did")
    evsub = ev.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(evsub, "list",
                   lambda c, a: (c.call("host.events", name=a.name),
                                 EVENT_COLUMNS),
                   "list a host's recovery events (failed, fence attempts "
                   "and why they failed, recovered)", formatted=True)
    s.add_argument("name")

    from agent.cli import evacuate, migrate
    migrate.register_host(sub)
    evacuate.register_host(sub)
