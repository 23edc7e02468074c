"""The lab's choice of database and controllers (drover lab up
--database, --controllers): kept for later lab ups, refused when SQLite
would have two controllers."""
import pytest

from agent.common.errors import InvalidInput
from agent.lab import fleet
from agent.lab.lab import Lab


@pytest.fixture
def lab(tmp_path):
    return Lab(str(tmp_path / "lab"), "drvu", "198.18.90.0/24")


def test_default_is_one_controller_on_sqlite(lab):
    assert fleet.topology(lab)["controllers"] == 1
    assert fleet.database_url(lab).startswith("sqlite:///")


def test_two_controllers_need_postgresql(lab):
    with pytest.raises(InvalidInput, match="needs --database postgresql"):
        fleet.choose(lab, controllers=2)
    topo = fleet.choose(lab, controllers=2, database="postgresql")
    assert topo["pg_port"] > 0
    # A later lab up without flags keeps the choice.
    assert fleet.choose(lab) == topo
    assert fleet.database_url(lab).startswith("postgresql+psycopg://")


def test_each_controller_has_its_own_socket_and_name(lab):
    fleet.choose(lab, controllers=2, database="postgresql")
    assert fleet.controller_socket(lab, 0) != fleet.controller_socket(lab, 1)
    assert fleet.controller_name(1) == "drover-controller-2"
    with open(fleet.controller_conf(lab, 1)) as f:
        conf = f.read()
    assert "name = controller-2" in conf
    assert fleet.database_url(lab) in conf


def test_unknown_database_is_refused(lab):
    with pytest.raises(InvalidInput, match="unknown database 'mysql'"):
        fleet.choose(lab, database="mysql")
