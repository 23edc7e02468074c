"""Fixtures for unit and lab tests alike: a real PostgreSQL server.

``pg_server`` starts one (agent.lab.pgserver: initdb into a temporary
directory, run as the postgres user when we are root, a port of its own)
for the session and stops it at the end.  Without PostgreSQL installed the
tests that need it are skipped, except in CI (CI=true), where they fail:
CI installs it (.ci/setup).
"""
import itertools
import os

import pytest

from agent.lab.pgserver import PgServer

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer()
    try:
        server.start()
        server.wait_ready()
    except Exception as err:
        server.stop()
        why = f"no PostgreSQL server for the tests: {err}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty database of the test's own (dropped at the
    end)."""
    name = f"t{os.getpid()}_{next(_names)}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)
