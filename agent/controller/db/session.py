"""Engine and transactions for the state store.

SQLite (file URLs): WAL journal, foreign keys on, a busy timeout, and every
write transaction opened with ``BEGIN IMMEDIATE`` so that writers queue on
the database lock instead of failing half way (reads use a plain BEGIN and
are not blocked by writers under WAL).

PostgreSQL (psycopg 3): READ COMMITTED transactions; a write that reads
before it decides takes the rows it decides on with ``SELECT ... FOR
UPDATE`` (a claim locks its host row, an ownership change its instance
and task rows), so concurrent writers from any number of controllers
queue on those rows only.  TCP keepalives make a vanished peer's session
end (and its locks go) within about 3 x [database] keepalive_s.

``Database.fence``: a callable run at the start of every write transaction
(the leader lease's check, agent.controller.leader): it raises Deposed when
this controller is no longer the leader, so a deposed controller writes
nothing.
"""
import contextlib

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from agent.common.errors import InvalidInput, NotFound

BUSY_TIMEOUT_S = 30
_BEGIN = "drover_sqlite_begin"


def normalize_url(url):
    """``url`` with PostgreSQL URLs on the psycopg 3 driver (a bare
    postgresql:// would pick psycopg2).  InvalidInput for other databases:
    drover is tested on SQLite and PostgreSQL only."""
    try:
        parsed = make_url(url)
    except Exception as err:
        raise InvalidInput(f"[database] connection: not a database URL: "
                           f"{err}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return url
    if backend != "postgresql":
        raise InvalidInput(f"[database] connection: {backend} is not "
                           "supported; use sqlite:////path or "
                           "postgresql+psycopg://user@host/db")
    if parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_postgresql(url):
    return make_url(url).get_backend_name() == "postgresql"


def make_engine(url, busy_timeout=BUSY_TIMEOUT_S, pool_size=None):
    """An Engine for ``url`` with drover's SQLite or PostgreSQL settings
    applied."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        from agent.conf import CONF
        alive = CONF.database.keepalive_s
        extra = {} if pool_size is None else {"pool_size": pool_size,
                                               "max_overflow": 0}
        return create_engine(
            url, pool_pre_ping=True, connect_args={
                "connect_timeout": 10, "keepalives": 1,
                "keepalives_idle": alive, "keepalives_interval": alive,
                "keepalives_count": 3,
                "application_name": "drover-controller"}, **extra)
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
        self.url = normalize_url(url)
        self.engine = make_engine(url, busy_timeout)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.fence = None           # callable(session): raises Deposed
        self.term = None            # the leader term writes carry
        self._writer = (self.engine.execution_options(**{_BEGIN: "IMMEDIATE"})
                        if self.sqlite else self.engine)

    @contextlib.contextmanager
    def read(self):
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextlib.contextmanager
    def write(self):
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            if self.fence is not None:
                self.fence(s)
            yield s

    def dispose(self):
        self.engine.dispose()


def one(session, stmt, what):
    """The single row ``stmt`` selects, or NotFound naming ``what``."""
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} not found")
    return row
