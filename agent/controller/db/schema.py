"""Schema migrations (alembic), run from Python at controller start.

The migration scripts live in ``migrations/`` next to this module.  A new
revision, after changing models.py::

    from alembic import command
    from agent.controller.db import schema
    command.revision(schema.alembic_config("sqlite:////tmp/dev.db"),
                     "what changed", autogenerate=True)

(upgrade that scratch database to head first).
"""
import os

from alembic import command
from alembic.config import Config

from agent.controller.db.session import make_engine

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
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
