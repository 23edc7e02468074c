"""Schema migrations (alembic), run from Python at controller start.

The migration scripts live in ``migrations/`` next to this module.  A new
revision, after changing models.py::

    from alembic import command
    from agent.controller.db import schema
    command.revision(schema.alembic_config("sqlite:////tmp/dev.db"),
                     "what changed", autogenerate=True)

(upgrade that scratch database to head first).

``drover-controller db upgrade`` runs ``upgrade`` (as nova-manage db sync);
the controller also runs it at start.  On PostgreSQL an advisory lock
makes controllers that start together migrate one after the other.
"""
import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from agent.controller.db.session import make_engine, normalize_url

# pg_advisory_lock key held while migrating ("drovmigr").
MIGRATE_LOCK = 0x64726F766D696772

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "migrations")


def alembic_config(url):
    """An alembic Config for the database at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["url"] = url
    return cfg


def upgrade(url, revision="head"):
    """Bring the database at ``url`` to ``revision`` (creating it)."""
    url = normalize_url(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pg = conn.dialect.name == "postgresql"
            if pg:
                conn.execute(text("SELECT pg_advisory_lock(:k)"),
                             {"k": MIGRATE_LOCK})
                conn.commit()
            try:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if pg:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                 {"k": MIGRATE_LOCK})
                    conn.commit()
    finally:
        engine.dispose()


def current(url):
    """The database's revision (None: never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
