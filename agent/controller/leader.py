"""The leader lease of standby controllers sharing one PostgreSQL database.

Two or more drover-controller processes may share the database; one is the
leader, the others wait.  The lease is PostgreSQL's own, no clock of ours:

- **The lock.**  The leader holds a session advisory lock (LEADER_LOCK) on
  a connection of its own.  PostgreSQL lets it go the moment that session
  ends: the process died (its socket is closed by the kernel), or its host
  vanished (TCP keepalives, [database] keepalive_s, end the session).
- **The term.**  Whoever takes the lock raises ``leader.term`` by one and
  records itself there (holder, API socket, the PostgreSQL session that
  holds the lock).  A standby reads that row to say where the leader is.
- **The fence.**  Every write transaction of the leader's store first
  checks, in the database, that the leader row still carries its term AND
  that its lock session still holds the lock (pg_locks), taking the row
  with FOR SHARE: a new leader's term change waits for writes in flight,
  and every write after it is refused with Deposed.  So a deposed leader
  (its lock session gone while the process lives on) writes nothing, even
  before the new leader has raised the term.

On SQLite there is no lease: one controller, as before.
"""
import logging
import os
import socket

from sqlalchemy import text

from agent.common.errors import Deposed
from agent.controller.db.session import make_engine

LOG = logging.getLogger(__name__)

# pg_advisory_lock key of the leader ("drov" "lead").
LEADER_LOCK = 0x64726F766C656164
_KEY_HI, _KEY_LO = LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF

_HELD = text(
    "SELECT l.term FROM leader l WHERE l.id = 1 AND EXISTS ("
    " SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid)"
    " AND objsubid = 1 AND pid = :pid)"
    " FOR SHARE OF l")


def default_name():
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLease:
    """This controller's claim to be the leader.

    ``try_acquire`` (standbys call it every [database]
    leader_poll_interval) takes the lock and starts a new term;
    ``check(session)`` is the store's write fence; ``holds`` tells whether
    the lock session is still there; ``current`` reads who leads."""

    def __init__(self, url, name=None, address=None):
        self.url = url
        self.name = name or default_name()
        self.address = address
        self.engine = make_engine(url, pool_size=2)
        self.term = None
        self.pid = None
        self._conn = None

    @property
    def leading(self):
        return self.term is not None

    def try_acquire(self):
        """Take the lock if it is free and start a new term; True if this
        controller is the leader now."""
        if self.leading:
            return True
        conn = self.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                               {"k": LEADER_LOCK}).scalar()
            if not got:
                conn.close()
                return False
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with self.engine.begin() as tx:
                term = tx.execute(text(
                    "UPDATE leader SET term = term + 1, holder = :holder, "
                    "address = :address, backend_pid = :pid, since = "
                    "timezone('utc', now()) WHERE id = 1 RETURNING term"),
                    {"holder": self.name, "address": self.address,
                     "pid": pid}).scalar_one()
        except Exception:
            conn.close()
            raise
        self._conn, self.pid, self.term = conn, pid, term
        LOG.info("leader: %s took the lease, term %d", self.name, term)
        return True

    def check(self, session):
        """The write fence (Database.fence): Deposed unless this
        controller's lock session still holds the lock and the term is
        still its own."""
        if not self.leading:
            raise Deposed(f"controller {self.name} is not the leader; it "
                          "may not write")
        term = session.execute(_HELD, {"hi": _KEY_HI, "lo": _KEY_LO,
                                       "pid": self.pid}).scalar()
        if term != self.term:
            raise Deposed(f"controller {self.name} is no longer the leader "
                          f"(its term {self.term} is over); its writes are "
                          "refused")

    def holds(self):
        """True while the lock session is alive (asks the server)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            return True
        except Exception as err:
            LOG.error("leader: the lock session of term %s is gone: %s",
                      self.term, err)
            return False

    def current(self):
        """The leader record: {term, holder, address, since} (holder None
        when no leader ever was)."""
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT term, holder, address, since FROM leader "
                "WHERE id = 1")).mappings().one()
        return {"term": row["term"], "holder": row["holder"],
                "address": row["address"],
                "since": row["since"].isoformat(timespec="seconds") + "Z"
                if row["since"] else None}

    def close(self):
        """Give the lease up (a standby takes it at its next try)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": LEADER_LOCK})
                self._conn.close()
            except Exception:           # already gone
                pass
            self._conn = None
        self.engine.dispose()
