"""The ``drover`` command: an argparse tree of verb modules.

Each verb module in ``VERB_MODULES`` has ``register(subparsers)``, which adds
its sub-commands; each sub-command sets ``func(args) -> int`` through
``set_defaults``.  Errors derived from DroverError become one line on
stderr and their exit code; nothing a user can cause prints a traceback.
The configuration is read (``load_conf``) only by what needs it: a
controller verb given its socket starts without oslo.config (0.1 s less).
Only the verb a command names is imported, and of it only the action
named is built (argparse took about 30 ms to build the whole tree, 9 ms
for the server verb, a third of the CLI's own time in a live
migration); help, no verb or an unknown one build them all.
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
    # (action, built): its actions (first sub-parsers) are built for
    # that action only (see _OneAction); None: all.
    only_action = None

    def error(self, message):
        self.exit(2, f"drover: {message}\n")

    def add_subparsers(self, **kwargs):
        actions = super().add_subparsers(**kwargs)
        if self.only_action is None:
            return actions
        return _OneAction(actions, *self.only_action)


def load_conf(args):
    """Read drover.conf (and --config-file) into agent.conf.CONF."""
    from agent import conf
    conf.load([f"--config-file={p}" for p in args.config_file])
    return conf.CONF


def _words(argv):
    """The verb and the action ``argv`` names (its first two words that
    are neither options nor a global option's value); None for each
    missing."""
    words, found = iter(argv), []
    for word in words:
        if not found and word in ("--config-file", "--controller-socket"):
            next(words, None)
        elif not word.startswith("-"):
            found.append(word)
            if len(found) == 2:
                break
    return (found + [None, None])[:2]


class _Skipped:
    """A parser the command line does not use: what is declared on it is
    not built."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


class _OneAction:
    """The actions of ``verb``, of which only ``action`` is built; the
    ones built are listed in ``built``."""

    def __init__(self, actions, action, built):
        self._actions, self._action, self._built = actions, action, built

    def add_parser(self, name, **kwargs):
        if name != self._action:
            return _Skipped()
        self._built.append(name)
        return self._actions.add_parser(name, **kwargs)


class _OneVerb:
    """The verbs, of which ``verb``'s actions are built for ``action``
    only (the other verbs of the module that adds it are built too)."""

    def __init__(self, subparsers, verb, action, built):
        self._subparsers = subparsers
        self._verb, self._action, self._built = verb, action, built

    def add_parser(self, name, **kwargs):
        parser = self._subparsers.add_parser(name, **kwargs)
        if name == self._verb:
            parser.only_action = (self._action, self._built)
        return parser


def build_parser(argv=None):
    """The parser of the whole CLI, or with ``argv`` given, of what it
    names only: its verb, and of that verb only its action (all verbs
    when it names no verb that exists, and all of the verb's actions
    when it names no action the verb has)."""
    verb, action = _words(argv) if argv is not None else (None, None)
    if verb not in VERBS:
        return _build(VERB_MODULES)
    if action is not None:
        built = []
        parser = _build((VERBS[verb],),
                        lambda sub: _OneVerb(sub, verb, action, built))
        if built:
            return parser
    return _build((VERBS[verb],))


def _build(modules, wrap=lambda subparsers: subparsers):
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
        importlib.import_module(name).register(wrap(subparsers))
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
