"""The shared-storage probe: what one host writes, another sees only if
they share the storage; names that are not probes are refused."""
import pytest

from agent.common.errors import InvalidInput
from agent.conf import CONF
from agent.host import storage


@pytest.fixture
def paths(tmp_path):
    local, shared = tmp_path / "local", tmp_path / "shared"
    CONF.set_override("instances_path", str(local), "agent")
    CONF.set_override("shared_instances_path", str(shared), "agent")
    yield local, shared
    CONF.clear_override("instances_path", "agent")
    CONF.clear_override("shared_instances_path", "agent")


def test_probe_is_found_where_written_and_removed(paths):
    name = storage.probe_write("shared")["name"]
    assert (paths[1] / name).read_text() == name
    assert storage.probe_check("shared", name) == {"found": True}
    assert storage.probe_check("local", name) == {"found": False}
    assert storage.probe_remove("shared", name) == {"removed": True}
    assert storage.probe_check("shared", name) == {"found": False}
    assert storage.probe_remove("shared", name) == {"removed": False}


def test_each_probe_has_its_own_name(paths):
    assert storage.probe_write("local")["name"] != \
        storage.probe_write("local")["name"]


@pytest.mark.parametrize("name", ["../etc/passwd", ".drover-probe-../x",
                                  "disk", ".drover-probe-a/b", ""])
def test_names_that_are_not_probes_are_refused(paths, name):
    with pytest.raises(InvalidInput):
        storage.probe_check("local", name)
    with pytest.raises(InvalidInput):
        storage.probe_remove("local", name)
