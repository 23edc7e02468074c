"""Store methods: host events (``host event list``)."""
from sqlalchemy import select

from agent.controller.db.models import HostEvent

DETAILS_MAX = 1000


class HostEventsMixin:
    def add_host_event(self, host, event, result="Success", details=None,
                       task_id=None):
        """Record ``event`` (e.g. "fence") of ``host``: ``result``
        "Success", "Error" or "Info", ``details`` the reason."""
        rec = HostEvent(host=host, event=event, result=result,
                        details=(details or None) and str(details)[
                            :DETAILS_MAX], task_id=task_id)
        with self.db.write() as s:
            s.add(rec)
            s.flush()
            return rec.as_dict()

    def list_host_events(self, host, limit=None):
        """Oldest first (the newest ``limit`` if given)."""
        stmt = select(HostEvent).where(HostEvent.host == host) \
            .order_by(HostEvent.id.desc())
        if limit:
            stmt = stmt.limit(limit)
        with self.db.read() as s:
            return [e.as_dict() for e in reversed(list(s.scalars(stmt)))]
