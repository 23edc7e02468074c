"""The controller's state store: models, alembic migrations, Store API.

    from agent.controller.db import Store, upgrade
    upgrade(url)            # at controller start
    store = Store(url)
"""
from agent.controller.db.api import ClaimFailed, Store
from agent.controller.db.schema import upgrade

__all__ = ["ClaimFailed", "Store", "upgrade"]
