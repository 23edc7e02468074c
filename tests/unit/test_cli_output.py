import json

import pytest

from agent.cli import output
from agent.common.errors import InvalidInput

ROWS = [{"Name": "h1", "State": "up", "Zone": None},
        {"Name": "host-two", "State": "down", "Zone": "az1"}]


def test_table_aligns_columns():
    text = output.format_list(ROWS, ["Name", "State", "Zone"])
    lines = text.splitlines()
    assert len({len(x) for x in lines}) == 1
    assert "| host-two | down  | az1  |" in lines


def test_json_keeps_types_and_order():
    data = json.loads(output.format_list(ROWS, ["Name", "Zone"], "json"))
    assert data == [{"Name": "h1", "Zone": None},
                    {"Name": "host-two", "Zone": "az1"}]


def test_value_with_columns():
    text = output.format_list(ROWS, ["Name", "State", "Zone"], "value",
                              ["State"])
    assert text == "up\ndown"


def test_unknown_column_is_one_clear_error():
    with pytest.raises(InvalidInput, match="unknown column 'Nope'"):
        output.format_list(ROWS, ["Name"], "table", ["Nope"])


def test_show_renders_dicts_and_lists():
    text = output.format_show({"name": "a", "properties": {"ssd": "true"},
                               "hosts": ["h1", "h2"]})
    assert "ssd='true'" in text and "h1, h2" in text
    assert output.format_show({"name": "a"}, "value") == "a"
