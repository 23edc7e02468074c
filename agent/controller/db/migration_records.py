"""Store methods: migration records (cold, resize, live, evacuation)."""
import uuid as uuidlib

from sqlalchemy import or_, select

from agent.common.errors import Conflict, InvalidInput
from agent.controller import states
from agent.controller.db.models import Migration
from agent.controller.db.session import one

UPDATABLE = frozenset({"status", "progress", "dest_host", "error",
                       "new_flavor", "prediction"})


def _get(s, id_or_uuid):
    cond = Migration.uuid == str(id_or_uuid)
    if str(id_or_uuid).isdigit():
        cond = or_(cond, Migration.id == int(id_or_uuid))
    return one(s, select(Migration).where(cond), f"migration {id_or_uuid}")


class MigrationsMixin:
    def create_migration(self, instance_uuid, type, source_host,
                         dest_host=None, old_flavor=None, new_flavor=None,
                         status=states.MIG_PRE_MIGRATING):
        """Record a move; its ``uuid`` is the consumer of the allocation it
        holds.  Returns the record."""
        if type not in states.MIGRATION_TYPES:
            raise InvalidInput(f"invalid migration type {type!r}")
        mig = Migration(uuid=str(uuidlib.uuid4()), instance_uuid=instance_uuid,
                        type=type, source_host=source_host,
                        dest_host=dest_host, status=status,
                        old_flavor=old_flavor, new_flavor=new_flavor)
        with self.db.write() as s:
            s.add(mig)
            s.flush()
            return mig.as_dict()

    def update_migration(self, id_or_uuid, expected_status=None, **values):
        """Set ``values`` (UPDATABLE columns); with ``expected_status`` (a
        status or tuple) only if the status is one of them, else
        Conflict."""
        unknown = set(values) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "status" in values and \
                values["status"] not in states.MIGRATION_STATUSES:
            raise ValueError(f"unknown migration status {values['status']}")
        with self.db.write() as s:
            mig = _get(s, id_or_uuid)
            if expected_status is not None:
                allowed = (expected_status if isinstance(expected_status,
                                                         tuple)
                           else (expected_status,))
                if mig.status not in allowed:
                    raise Conflict(f"migration {mig.id} is {mig.status}, "
                                   f"not {' or '.join(allowed)}")
            for key, value in values.items():
                setattr(mig, key, value)
            s.flush()
            return mig.as_dict()

    def get_migration(self, id_or_uuid):
        with self.db.read() as s:
            return _get(s, id_or_uuid).as_dict()

    def list_migrations(self, instance_uuid=None, host=None, status=None,
                        type=None, in_progress=None):
        """Newest first; ``host`` matches source or destination;
        ``in_progress`` True/False filters on states.migration_in_progress.
        """
        stmt = select(Migration).order_by(Migration.id.desc())
        if instance_uuid is not None:
            stmt = stmt.where(Migration.instance_uuid == instance_uuid)
        if host is not None:
            stmt = stmt.where(or_(Migration.source_host == host,
                                  Migration.dest_host == host))
        if status is not None:
            stmt = stmt.where(Migration.status == status)
        if type is not None:
            stmt = stmt.where(Migration.type == type)
        if in_progress is not None:
            final = Migration.status.in_(states.MIGRATION_FINAL)
            stmt = stmt.where(~final if in_progress else final)
        with self.db.read() as s:
            return [m.as_dict() for m in s.scalars(stmt)]
