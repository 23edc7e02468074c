"""drover task show|cancel: ids are checked before anything is asked."""
import pytest

from agent.cli.main import build_parser, main


def test_task_verbs_parse_an_id():
    args = build_parser().parse_args(["task", "cancel", "7"])
    assert (args.verb, args.action, args.id) == ("task", "cancel", 7)


@pytest.mark.parametrize("bad", ["x", "0", "-3", "1; rm -rf /"])
def test_a_bad_task_id_is_one_line_and_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as err:
        main(["task", "show", bad])
    assert err.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
