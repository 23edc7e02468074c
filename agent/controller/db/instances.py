"""Store methods: instances."""
import uuid as uuidlib

from sqlalchemy import exc, select

from agent.common.errors import Conflict, DroverError, InvalidInput, NotOwner
from agent.conf import CONF
from agent.controller import states
from agent.controller.db import addresses, validate
from agent.controller.db.catalog import get_flavor, get_image
from agent.controller.db.models import Allocation, Host, Instance, utcnow
from agent.controller.db.session import one

STORAGE = ("local", "shared")
# Columns update_instance may change.
UPDATABLE = frozenset({
    "host", "availability_zone", "vm_state", "task_state", "power_state",
    "flavor", "flavor_id", "old_flavor", "new_flavor", "error", "storage",
    "launched_at", "image_uuid", "shelved_image_uuid"})
_ATTEMPTS = 5


def flavor_snapshot(flavor):
    return {k: flavor[k] for k in ("id", "name", "vcpus", "ram_mb",
                                   "disk_gb", "properties")}


def get_instance(s, name_or_uuid, deleted=False, lock=False):
    """By uuid (deleted ones too if ``deleted``), else by live name.
    ``lock``: take its row lock (FOR UPDATE; on PostgreSQL a concurrent
    writer of the same instance waits for this transaction)."""
    if validate.is_uuid(name_or_uuid):
        stmt = select(Instance).where(Instance.uuid == name_or_uuid)
        if not deleted:
            stmt = stmt.where(Instance.deleted_at.is_(None))
    else:
        stmt = select(Instance).where(Instance.name == name_or_uuid,
                                      Instance.deleted_at.is_(None))
    if lock:
        stmt = stmt.with_for_update()
    return one(s, stmt, f"instance {name_or_uuid}")


def as_dict(s, instance, hosts=None):
    """The instance's columns, its ``status`` and its ``host_status``
    (its host's record from ``hosts`` {name: Host}, or read in ``s``)."""
    d = instance.as_dict()
    d["status"] = states.status(instance.vm_state, instance.task_state)
    host = None
    if instance.host:
        host = (hosts.get(instance.host) if hosts is not None else
                s.execute(select(Host).where(Host.name == instance.host)
                          ).scalar_one_or_none())
    d["host_status"] = states.host_status(
        instance.host, host and host.as_dict())
    return d


class InstancesMixin:
    def create_instance(self, name, flavor, image, availability_zone=None,
                        storage="local", uuid=None, guest_metadata=None):
        """Record a new instance (vm_state building, task_state
        scheduling) with an IP from CONF.controller.guest_address_range
        and a MAC, both unique among live instances.  ``flavor``,
        ``image``: name or id/uuid."""
        validate.name(name, "instance name")
        if availability_zone is not None:
            validate.name(availability_zone, "availability zone")
        if storage not in STORAGE:
            raise InvalidInput(f"invalid storage {storage!r}: use local or "
                               "shared")
        for attempt in range(_ATTEMPTS):
            try:
                return self._create_instance(
                    name, flavor, image, availability_zone, storage,
                    uuid or str(uuidlib.uuid4()), guest_metadata or {})
            except exc.IntegrityError:
                # Lost a race for an address (not on SQLite: writers queue).
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _create_instance(self, name, flavor, image, zone, storage, uuid,
                         guest_metadata):
        with self.db.write() as s:
            if s.scalar(select(Instance.id).where(
                    Instance.name == name, Instance.deleted_at.is_(None))):
                raise Conflict(f"instance {name} already exists")
            fl = get_flavor(s, flavor)
            img = get_image(s, image)
            used = set(s.scalars(select(Instance.ip)
                                 .where(Instance.ip.is_not(None))))
            ip = addresses.first_free(CONF.controller.guest_address_range,
                                      used)
            if ip is None:
                raise DroverError("no free guest address in "
                                  + CONF.controller.guest_address_range)
            mac = addresses.random_mac()
            while s.scalar(select(Instance.id).where(Instance.mac == mac)):
                mac = addresses.random_mac()
            inst = Instance(
                uuid=uuid, name=name, flavor_id=fl.id,
                flavor=flavor_snapshot(fl.as_dict()), image_uuid=img.uuid,
                availability_zone=zone, requested_availability_zone=zone,
                vm_state=states.BUILDING, task_state=states.SCHEDULING,
                power_state=states.NOSTATE, ip=ip, mac=mac, storage=storage,
                guest_metadata=guest_metadata)
            s.add(inst)
            s.flush()
            return as_dict(s, inst)

    def get_instance(self, name_or_uuid, deleted=False):
        """A live instance by name or uuid (``deleted``: uuid of a deleted
        one too).  Dicts carry ``status`` as well as the columns."""
        with self.db.read() as s:
            return as_dict(s, get_instance(s, name_or_uuid, deleted))

    def list_instances(self, host=None, vm_state=None, deleted=False):
        stmt = select(Instance).order_by(Instance.name, Instance.id)
        if not deleted:
            stmt = stmt.where(Instance.deleted_at.is_(None))
        if host is not None:
            stmt = stmt.where(Instance.host == host)
        if vm_state is not None:
            stmt = stmt.where(Instance.vm_state == vm_state)
        with self.db.read() as s:
            rows = list(s.scalars(stmt))
            # Only their hosts: a poll lists one host's instances, and
            # reading all 1,000 hosts each time made a poll cycle O(N^2).
            names = {i.host for i in rows if i.host}
            hosts = {h.name: h for h in s.scalars(
                select(Host).where(Host.name.in_(names)))} if names else {}
            return [as_dict(s, i, hosts) for i in rows]

    def update_instance(self, uuid, expected=None, owner=None, **values):
        """Set ``values`` (columns in UPDATABLE) on a live instance, only
        if its current columns match ``expected`` ({column: value or tuple
        of values}); else Conflict.  ``owner``: the id of the task making
        the change, refused with NotOwner unless that task owns the
        instance (its fencing token): a superseded or finished task can
        never overwrite what the new owner wrote.  Returns the updated
        instance."""
        unknown = set(values) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self.db.write() as s:
            inst = get_instance(s, uuid, lock=True)
            if owner is not None and inst.task_id != owner:
                raise NotOwner(f"instance {inst.name} is owned by task "
                               f"{inst.task_id}, not by task {owner}")
            for key, want in (expected or {}).items():
                have = getattr(inst, key)
                ok = have in want if isinstance(want, tuple) else have == want
                if not ok:
                    raise Conflict(f"instance {inst.name}: {key} is {have}, "
                                   f"expected {want}")
            for key, value in values.items():
                setattr(inst, key, value)
            s.flush()
            return as_dict(s, inst)

    def mark_instance_deleted(self, uuid):
        """vm_state deleted, its IP and MAC freed, its allocations (the
        instance as consumer) released."""
        with self.db.write() as s:
            inst = get_instance(s, uuid, lock=True)
            inst.vm_state, inst.task_state = states.DELETED, None
            inst.deleted_at = utcnow()
            inst.ip = inst.mac = None
            for alloc in s.scalars(select(Allocation).where(
                    Allocation.consumer == inst.uuid)):
                s.delete(alloc)
            s.flush()
            return as_dict(s, inst)
