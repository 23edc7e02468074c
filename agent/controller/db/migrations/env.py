"""alembic environment: migrate the connection schema.upgrade() passes in,
or one made from the URL in the Config's attributes."""
from alembic import context

from agent.controller.db.models import Base
from agent.controller.db.session import make_engine


def _run(connection):
    context.configure(connection=connection,
                      target_metadata=Base.metadata,
                      render_as_batch=True,   # SQLite needs batch ALTERs
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main():
    attrs = context.config.attributes
    if attrs.get("connection") is not None:
        _run(attrs["connection"])
        return
    engine = make_engine(attrs["url"])
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


main()
