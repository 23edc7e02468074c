"""Engine and transactions for the state store.

SQLite (file URLs): WAL journal, foreign keys on, a busy timeout, and every
write transaction opened with ``BEGIN IMMEDIATE`` so that writers queue on
the database lock instead of failing half way (reads use a plain BEGIN and
are not blocked by writers under WAL).  Other databases: ordinary
transactions; the store takes row locks (``SELECT ... FOR UPDATE``) where it
must.
"""
import contextlib

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from agent.common.errors import NotFound

BUSY_TIMEOUT_S = 30
_BEGIN = "drover_sqlite_begin"


def make_engine(url, busy_timeout=BUSY_TIMEOUT_S):
    """An Engine for ``url`` with drover's SQLite settings applied."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url in ("sqlite://", "sqlite:///:memory:"):
        raise ValueError("the state store needs a file: sqlite:////path")
    engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's begin event (below) emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """An engine plus ``read()`` and ``write()`` transactions.

    Both yield a Session inside a transaction that commits on leaving the
    block and rolls back on an exception.
    """

    def __init__(self, url, busy_timeout=BUSY_TIMEOUT_S):
        self.url = url
        self.engine = make_engine(url, busy_timeout)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._writer = (self.engine.execution_options(**{_BEGIN: "IMMEDIATE"})
                        if self.sqlite else self.engine)

    @contextlib.contextmanager
    def read(self):
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextlib.contextmanager
    def write(self):
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            yield s

    def dispose(self):
        self.engine.dispose()


def one(session, stmt, what):
    """The single row ``stmt`` selects, or NotFound naming ``what``."""
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} not found")
    return row
