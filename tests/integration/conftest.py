"""Integration fixtures: namespace labs of this test session's own.

``lab`` is an ``agent.lab.lab.Lab`` with three running hosts, brought up
once per session beside any other lab on the machine and taken down at the
end.  It is named ``drvt`` on 198.18.64.0/24, or ``drvt1`` on
198.18.65.0/24 and so on while another test session holds that name.
Define guests on a host through its ``libvirt_uri``
(``qemu+tcp://ADDR/system``), run commands in it with
``lab.host_exec(host, argv)``, start daemons with
``lab.start_daemon(host, name, argv)``.

``lab_factory(count)`` brings up a further lab (``drvtx``..., from
198.18.72.0/24) that is taken down after the test.
"""
import contextlib
import os
import shutil
import tempfile

import pytest

from agent.common.errors import Conflict

LAB_HOSTS = 3
TRIES = 8


def _skip_unless_lab_can_run():
    from agent.lab.lab import unavailable_reason
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def _up_free_lab(base_dir, base_name, third_octet, count, made):
    """Bring up the first lab name and network no other lab is using."""
    from agent.lab.lab import Lab
    for k in range(TRIES):
        name = base_name + (str(k) if k else "")
        the_lab = Lab(os.path.join(base_dir, name), name,
                      f"198.18.{third_octet + k}.0/24")
        made.append(the_lab)
        try:
            the_lab.up(count)
            return the_lab
        except Conflict:
            made.remove(the_lab)    # another test session's: not ours
            continue
    pytest.fail(f"no free lab name among {base_name}..{base_name}"
                f"{TRIES - 1}")


@contextlib.contextmanager
def _lab_dir():
    """A directory of the lab's own: pytest prunes its older tmp_path
    trees, which may belong to another test session still running."""
    path = tempfile.mkdtemp(prefix="drover-test-lab-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def lab():
    _skip_unless_lab_can_run()
    made = []
    with _lab_dir() as base:
        try:
            yield _up_free_lab(base, "drvt", 64, LAB_HOSTS, made)
        finally:
            for the_lab in made:
                the_lab.down()


@pytest.fixture(scope="session")
def lab_hosts(lab):
    """``lab.status()`` rows: name, address, libvirt_uri, ssh_address..."""
    return lab.status()


@pytest.fixture
def lab_factory():
    _skip_unless_lab_can_run()
    made = []
    with _lab_dir() as base:

        def make(count):
            return _up_free_lab(base, "drvtx", 72, count, made)
        try:
            yield make
        finally:
            from agent.lab import fleet as lab_fleet
            for the_lab in made:
                lab_fleet.down(the_lab)     # its PostgreSQL data too


@pytest.fixture(scope="session")
def fleet(lab):
    """drover running on the session lab: an agent per host, a controller,
    hosts, the lab guest image and lab flavors registered.  A
    ``helpers.Fleet`` (CLI runner, API client, guest checks)."""
    from agent.conf import CONF
    from agent.lab import fleet as lab_fleet
    from agent.lab.image import build_image
    from helpers import Fleet
    cache = os.environ.get("DROVER_LAB_CACHE", CONF.lab.cache_dir)
    socket = lab_fleet.start(lab, build_image(cache), progress=lambda m: None)
    the_fleet = Fleet(lab, socket)
    yield the_fleet
    the_fleet.delete_all_servers()


@pytest.fixture
def own_fleet(lab_factory):
    """``own_fleet(count)``: drover on a lab of the test's own (taken down
    after it), for tests that power hosts off or cut them away: the
    session lab stays whole for the others."""
    from agent.conf import CONF
    from agent.lab import fleet as lab_fleet
    from agent.lab.image import build_image
    from helpers import Fleet

    def make(count, controllers=None, database=None):
        """``controllers``, ``database``: as drover lab up's
        --controllers, --database (default: one, on SQLite)."""
        the_lab = lab_factory(count)
        lab_fleet.choose(the_lab, controllers, database)
        cache = os.environ.get("DROVER_LAB_CACHE", CONF.lab.cache_dir)
        socket = lab_fleet.start(the_lab, build_image(cache),
                                 progress=lambda m: None)
        return Fleet(the_lab, socket)
    return make


@pytest.fixture
def audit_unchanged(fleet):
    """The fault matrix's oracle on the real lab: after the test (a fault
    injected into a real operation), ``drover fleet audit`` finds nothing
    it did not find before: no orphan or missing domain, no guest in two
    places, claims equal to what runs, no directory nobody owns, every
    host reached."""
    from helpers import audit_rows, finding_key, new_findings
    before = {finding_key(r) for r in audit_rows(fleet)}
    yield
    assert new_findings(fleet, before) == []


@pytest.fixture
def servers(fleet):
    """Names of servers a test creates, deleted after it."""
    names = []
    yield names
    fleet.delete_servers(names)


@pytest.fixture(scope="module")
def standby_fleet():
    """drover on a two-host lab of the module's own with two controllers
    sharing a PostgreSQL server of the lab's own (drover lab up
    --controllers 2 --database postgresql): the first leads, the second
    stands by.  Taken down after the module."""
    _skip_unless_lab_can_run()
    from agent.conf import CONF
    from agent.lab import fleet as lab_fleet
    from agent.lab.image import build_image
    from helpers import Fleet
    made = []
    with _lab_dir() as base:
        try:
            the_lab = _up_free_lab(base, "drvts", 80, 2, made)
            lab_fleet.choose(the_lab, 2, "postgresql")
            cache = os.environ.get("DROVER_LAB_CACHE", CONF.lab.cache_dir)
            socket = lab_fleet.start(the_lab, build_image(cache),
                                     progress=lambda m: None)
            yield Fleet(the_lab, socket)
        finally:
            for the_lab in made:
                lab_fleet.down(the_lab, progress=lambda m: None)
