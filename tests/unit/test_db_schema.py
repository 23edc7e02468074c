"""The schema comes from the alembic migrations, and they match the
models."""
import sqlite3

import pytest

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from agent.controller.db import Store, upgrade
from agent.controller.db.models import Base
from agent.controller.db.schema import alembic_config


def test_upgrade_creates_every_table_and_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    upgrade(url)
    rev = sqlite3.connect(tmp_path / "drover.db").execute(
        "SELECT version_num FROM alembic_version").fetchall()
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert rev == [(head,)]


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    try:
        with store.db.engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() >= 10_000
    finally:
        store.close()


@pytest.mark.parametrize("older", ["0001", "0002", "0003"])
def test_an_upgrade_keeps_the_hosts_of_an_older_database(tmp_path, older):
    """A host recorded before host status (0002), task ownership (0003)
    and fencing (0004) comes through the upgrade up, with nothing of the
    new columns set."""
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url, older)
    db = sqlite3.connect(tmp_path / "drover.db")
    db.execute("INSERT INTO hosts (name, address, enabled, state, vcpus, "
               "memory_mb, disk_gb, vcpus_used, memory_mb_used, "
               "disk_gb_used, created_at) VALUES ('h1', '198.18.0.1', 1, "
               "'up', 8, 4096, 40, 0, 0, 0, '2026-12-01 07:00:00')")
    db.commit()
    db.close()
    upgrade(url)
    store = Store(url)
    try:
        host = store.get_host("h1")
        assert host["state"] == "up" and host["down_reason"] is None
        assert (host["forced_down"], host["fence_agent"],
                host["fenced_at"]) == (False, None, None)
        assert store.list_cleanups() == []
    finally:
        store.close()
