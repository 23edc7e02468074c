"""Store methods: clean-ups a host owes for when it answers again."""
from sqlalchemy import select

from agent.controller.db.models import HostCleanup

REMOVABLE = frozenset({"domain", "files"})


class CleanupsMixin:
    def record_cleanup(self, host, instance_uuid, storage, remove,
                       reason=None):
        """Record that ``host`` must remove ``remove`` (of "domain",
        "files") of instance ``instance_uuid`` when it returns.  Once per
        host and instance: a second record adds to the first."""
        remove = set(remove)
        if not remove or not remove <= REMOVABLE:
            raise ValueError(f"cannot remove {sorted(remove)}")
        with self.db.write() as s:
            rec = s.execute(select(HostCleanup).where(
                HostCleanup.host == host,
                HostCleanup.instance_uuid == instance_uuid)
            ).scalar_one_or_none()
            if rec is None:
                rec = HostCleanup(host=host, instance_uuid=instance_uuid,
                                  storage=storage, remove=sorted(remove),
                                  reason=reason)
                s.add(rec)
            else:
                rec.remove = sorted(remove | set(rec.remove))
            s.flush()
            return rec.as_dict()

    def list_cleanups(self, host=None):
        stmt = select(HostCleanup).order_by(HostCleanup.id)
        if host is not None:
            stmt = stmt.where(HostCleanup.host == host)
        with self.db.read() as s:
            return [c.as_dict() for c in s.scalars(stmt)]

    def delete_cleanup(self, cleanup_id):
        """Forget a clean-up that is done (no harm if it is gone)."""
        with self.db.write() as s:
            rec = s.get(HostCleanup, cleanup_id)
            if rec is not None:
                s.delete(rec)
