"""pytest collects tests/unit and tests/integration as top-level modules:
two test files with one basename stop the whole run at collection."""
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_basename():
    names = [p.name for p in TESTS.rglob("*.py")
             if "__pycache__" not in p.parts and p.name != "conftest.py"]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
