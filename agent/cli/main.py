"""The ``drover`` command: an argparse tree of verb modules.

Each verb module in ``VERB_MODULES`` has ``register(subparsers)``, which adds
its sub-commands; each sub-command sets ``func(args) -> int`` through
``set_defaults``.  Errors derived from DroverError become one line on
stderr and their exit code; nothing a user can cause prints a traceback.
The configuration is read (``load_conf``) only by what needs it: a
controller verb given its socket starts without oslo.config (0.1 s less).
"""
import argparse
import importlib
import sys

from agent.common.errors import DroverError

VERB_MODULES = (
    "agent.cli.host",
    "agent.cli.aggregate",
    "agent.cli.flavor",
    "agent.cli.image",
    "agent.cli.server",
    "agent.cli.task",
    "agent.cli.ha",
    "agent.cli.fleet",
    "agent.cli.lab",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"drover: {message}\n")


def load_conf(args):
    """Read drover.conf (and --config-file) into agent.conf.CONF."""
    from agent import conf
    conf.load([f"--config-file={p}" for p in args.config_file])
    return conf.CONF


def build_parser():
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
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
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
