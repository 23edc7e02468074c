"""The CLI builds only the verb and action a command names: whatever is
named parses, and its help reads, exactly as with the whole tree built;
an unknown verb or action gets the whole list to choose from."""
import argparse

import pytest

from agent.cli import main as cli_main


def _subparsers(parser):
    """A parser's sub-parsers by name (argparse has no public way to list
    them: its own attributes are read)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _pairs():
    full = cli_main.build_parser()
    for verb, vp in _subparsers(full).items():
        for action, ap in _subparsers(vp).items():
            yield verb, action, ap.format_help()


PAIRS = list(_pairs())


def test_every_verb_is_in_the_table_of_verbs():
    assert sorted(_subparsers(cli_main.build_parser())) == sorted(
        cli_main.VERBS)


@pytest.mark.parametrize("verb,action,help_text", PAIRS,
                         ids=[f"{v}-{a}" for v, a, _ in PAIRS])
def test_a_named_action_is_built_as_in_the_whole_tree(verb, action,
                                                      help_text):
    lazy = cli_main.build_parser(["--controller-socket", "/s", verb,
                                  action])
    assert _subparsers(_subparsers(lazy)[verb])[action].format_help() == \
        help_text


def test_only_the_named_action_is_built():
    lazy = cli_main.build_parser(["server", "migrate", "vm", "--wait"])
    assert list(_subparsers(lazy)) == ["server"]
    assert list(_subparsers(_subparsers(lazy)["server"])) == ["migrate"]
    args = lazy.parse_args(["server", "migrate", "vm", "--live-migration",
                            "--wait"])
    assert (args.name, args.live_migration, args.wait) == ("vm", True, True)


@pytest.mark.parametrize("argv,choices", [
    (["servr", "list"], "'server'"),
    (["server", "lst"], "'migrate'"),
])
def test_an_unknown_word_lists_every_choice(argv, choices, capsys):
    with pytest.raises(SystemExit) as err:
        cli_main.main(argv)
    assert err.value.code == 2
    assert choices in capsys.readouterr().err
