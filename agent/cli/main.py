"""The ``drover`` command: an argparse tree of verb modules.

Each verb module in ``VERB_MODULES`` has ``register(subparsers)``, which adds
its sub-commands; each sub-command sets ``func(args) -> int`` through
``set_defaults``.  Errors derived from DroverError become one line on
stderr and their exit code; nothing a user can cause prints a traceback.
The configuration is read (``load_conf``) only by what needs it: a
controller verb given its socket starts without oslo.config (0.1 s less).
Only the verb a command names is imported and built (argparse takes
about 30 ms to build the whole tree, a quarter of the CLI's own time in
a live migration); help, no verb or an unknown one build them all.
"""
import argparse
import importlib
import sys

from agent.common.errors import DroverError

# verb -> the module whose ``register`` adds it (a module may add more
# than one); the order is that of ``drover --help``.
VERBS = {
    "host": "agent.cli.host",
    "aggregate": "agent.cli.aggregate",
    "availability": "agent.cli.aggregate",
    "flavor": "agent.cli.flavor",
    "image": "agent.cli.image",
    "server": "agent.cli.server",
    "task": "agent.cli.task",
    "ha": "agent.cli.ha",
    "fleet": "agent.cli.fleet",
    "lab": "agent.cli.lab",
}
VERB_MODULES = tuple(dict.fromkeys(VERBS.values()))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"drover: {message}\n")


def load_conf(args):
    """Read drover.conf (and --config-file) into agent.conf.CONF."""
    from agent import conf
    conf.load([f"--config-file={p}" for p in args.config_file])
    return conf.CONF


def _verb(argv):
    """The verb ``argv`` names (its first word that is neither an option
    nor a global option's value), or None."""
    words = iter(argv)
    for word in words:
        if word in ("--config-file", "--controller-socket"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv=None):
    """The parser of the whole CLI, or with ``argv`` given, of the verb
    it names only (all of them if it names none that exists)."""
    modules = VERB_MODULES
    if argv is not None:
        verb = _verb(argv)
        if verb in VERBS:
            modules = (VERBS[verb],)
    parser = _Parser(prog="drover",
                     description="Move virtual machines around a fleet of "
                                 "libvirt/QEMU hosts.")
    parser.add_argument("--config-file", action="append", default=[],
                        metavar="PATH", help="drover.conf to read "
                        "(repeatable).")
    parser.add_argument("--controller-socket", metavar="PATH",
                        help="the controller's API socket (default: "
                             "$DROVER_CONTROLLER_SOCKET or "
                             "[controller] socket_path)")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB",
                                       parser_class=_Parser)
    subparsers.required = True
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except DroverError as err:
        print(f"drover: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("drover: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (drover ... | head): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
