"""Lab names are owned by one lab directory at a time."""
import pytest

from agent.common.errors import Conflict
from agent.lab import registry


def test_a_running_lab_keeps_its_name(tmp_path):
    root = str(tmp_path)
    registry.claim("lab", "/a", lambda d: True, root)
    with pytest.raises(Conflict):
        registry.claim("lab", "/b", lambda d: True, root)
    registry.claim("lab", "/a", lambda d: True, root)     # again: fine
    registry.claim("other", "/b", lambda d: True, root)
    assert registry.owner("lab", root) == "/a"


def test_a_dead_labs_name_is_taken_over(tmp_path):
    root = str(tmp_path)
    registry.claim("lab", "/a", lambda d: True, root)
    registry.claim("lab", "/b", lambda d: False, root)
    assert registry.owner("lab", root) == "/b"


def test_release_only_by_the_owner(tmp_path):
    root = str(tmp_path)
    registry.claim("lab", "/a", lambda d: True, root)
    registry.release("lab", "/b", root)
    assert registry.owner("lab", root) == "/a"
    registry.release("lab", "/a", root)
    assert registry.owner("lab", root) is None
