"""``drover lab``: the namespace lab (hypervisor hosts on this machine)."""
import argparse

from agent.cli import output

STATUS_COLUMNS = ("name", "address", "libvirt_uri", "ssh_address", "state",
                  "link", "daemons")
HOST_FIELDS = ("name", "address", "state", "link", "daemons")


def _conf(args):
    from agent.cli.main import load_conf
    return load_conf(args)


def _progress(message):
    print(message, flush=True)


def _lab(args):
    CONF = _conf(args)
    from agent.lab.lab import Lab
    return Lab(args.lab_dir or CONF.lab.lab_dir,
               name=args.name or CONF.lab.name,
               network=args.network or CONF.lab.network)


def _up(args):
    CONF = _conf(args)
    from agent.lab import fleet
    from agent.lab.image import build_image
    lab = _lab(args)
    count = args.hosts or CONF.lab.hosts
    if args.hosts_only:
        lab.up(count, progress=_progress)
    else:
        socket = fleet.up(lab, count, build_image(CONF.lab.cache_dir),
                          progress=_progress, controllers=args.controllers,
                          database=args.database)
        if socket != CONF.controller.socket_path:
            print(f"controller: export DROVER_CONTROLLER_SOCKET={socket}")
    output.emit(output.format_list(lab.status(), STATUS_COLUMNS))
    return 0


def _down(args):
    from agent.lab import fleet
    fleet.down(_lab(args), progress=_progress)
    return 0


def _status(args):
    rows = _lab(args).status()
    # JSON carries every field (storage paths, UUIDs); the table the main.
    columns = list(rows[0]) if rows and args.format == "json" \
        else STATUS_COLUMNS
    output.emit(output.format_list(rows, columns, args.format, args.column))
    return 0


def _show_host(args, row):
    output.emit(output.format_show({k: row[k] for k in HOST_FIELDS},
                                   args.format, args.column))
    return 0


def _verb_progress(args):
    """Progress lines for a table only: JSON and values stay parseable."""
    return _progress if args.format == "table" else (lambda _m: None)


def _host_stop(args):
    return _show_host(args, _lab(args).host_stop(
        args.host, progress=_verb_progress(args)))


def _host_start(args):
    return _show_host(args, _lab(args).host_start(
        args.host, progress=_verb_progress(args)))


def _link(args):
    return _show_host(args, _lab(args).link(args.host,
                                            up=args.direction == "up"))


def _demo(args):
    CONF = _conf(args)
    from agent.lab import demo
    from agent.lab.image import build_image
    return demo.run(_lab(args), args.hosts or CONF.lab.hosts,
                    build_image(CONF.lab.cache_dir), progress=_progress)


def _image(args):
    CONF = _conf(args)
    from agent.lab.image import build_image
    print(build_image(CONF.lab.cache_dir, force=args.force))
    return 0


def register(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lab-dir", metavar="DIR",
                        help="lab state directory (default: [lab] lab_dir)")
    common.add_argument("--name", help="lab name, prefix of its namespaces "
                        "and interfaces (default: [lab] name)")
    common.add_argument("--network", metavar="CIDR",
                        help="lab network in 198.18.0.0/15 "
                             "(default: [lab] network)")
    lab = subparsers.add_parser(
        "lab", help="namespace lab: hypervisor hosts on this machine",
        description="Run several real libvirt/QEMU hosts on this machine, "
                    "each in its own namespaces (needs root).")
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND",
                             parser_class=type(lab))
    sub.required = True

    p = sub.add_parser("up", parents=[common], help="start the lab's hosts "
                       "(idempotent; rebuilds broken hosts)")
    p.add_argument("--hosts", type=int, metavar="N",
                   help="number of hosts (default: [lab] hosts)")
    p.add_argument("--hosts-only", action="store_true",
                   help="only the hosts: no agents, no controller")
    p.add_argument("--database", choices=["sqlite", "postgresql"],
                   help="the controllers' state store: sqlite (default) "
                        "or a PostgreSQL server of the lab's own")
    p.add_argument("--controllers", type=int, metavar="N",
                   help="controllers sharing the database, one leader and "
                        "standbys (more than 1 needs --database "
                        "postgresql; default 1)")
    p.set_defaults(func=_up)

    p = sub.add_parser("demo", parents=[common], help="bring the lab up and "
                       "show drover's operations on real guests")
    p.add_argument("--hosts", type=int, metavar="N",
                   help="number of hosts (default: [lab] hosts)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("down", parents=[common], help="stop the lab and "
                       "remove its namespaces, interfaces and processes")
    p.set_defaults(func=_down)

    p = sub.add_parser("status", parents=[common], help="list the lab's "
                       "hosts and the state of their daemons")
    output.add_format_args(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("host", help="power a lab host off or on")
    verbs = p.add_subparsers(dest="host_command", metavar="COMMAND",
                             parser_class=type(lab))
    verbs.required = True
    for verb, func, text in (
            ("stop", _host_stop, "power a host off: every process of it "
             "dies, guests included; its storage, identity and addresses "
             "stay"),
            ("start", _host_start, "power a stopped host on again, its "
             "daemons and agent started")):
        v = verbs.add_parser(verb, parents=[common], help=text)
        v.add_argument("host", metavar="NAME", help="h1, LAB-h1 or 1")
        output.add_format_args(v)
        v.set_defaults(func=func)

    p = sub.add_parser("link", help="cut or restore a lab host's network")
    verbs = p.add_subparsers(dest="direction", metavar="COMMAND",
                             parser_class=type(lab))
    verbs.required = True
    for verb, text in (("down", "cut the host's network; its processes "
                        "keep running"),
                       ("up", "restore the host's network")):
        v = verbs.add_parser(verb, parents=[common], help=text)
        v.add_argument("host", metavar="NAME", help="h1, LAB-h1 or 1")
        output.add_format_args(v)
        v.set_defaults(func=_link)

    p = sub.add_parser("image", help="build the lab's guest image into "
                       "[lab] cache_dir")
    p.add_argument("--force", action="store_true",
                   help="rebuild even if the cached image is current")
    p.set_defaults(func=_image)
