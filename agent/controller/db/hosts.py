"""Store methods: hosts."""
from sqlalchemy import func, select

from agent.common.errors import Conflict, InvalidInput, one_line
from agent.controller.db import validate
from agent.controller.db.models import Allocation, Host, Instance, utcnow
from agent.controller.db.session import one

# What an agent reports about its host (Store.upsert_host facts=...).
FACTS = ("vcpus", "memory_mb", "disk_gb", "vcpus_used", "memory_mb_used",
         "disk_gb_used", "hypervisor_type", "libvirt_version",
         "qemu_version", "cpu_model", "instances_path",
         "shared_instances_path")
DOWN_REASON = 500       # characters kept of a host's down_reason


def get_host(s, name):
    return one(s, select(Host).where(Host.name == name), f"host {name}")


class HostsMixin:
    def upsert_host(self, name, address=None, migration_address=None,
                    facts=None):
        """Create host ``name`` (``address`` needed) or update it.  With
        ``facts`` (keys in FACTS, others ignored) it is also marked up and
        seen now, and the reason of its last failed poll is forgotten."""
        validate.name(name, "host name")
        with self.db.write() as s:
            host = s.execute(select(Host).where(Host.name == name)
                             ).scalar_one_or_none()
            if host is None:
                if not address:
                    raise InvalidInput(f"host {name}: an address is needed")
                host = Host(name=name, address=address)
                s.add(host)
            elif address:
                host.address = address
            if migration_address is not None:
                host.migration_address = migration_address or None
            for key in FACTS:
                if facts and key in facts:
                    setattr(host, key, facts[key])
            if facts is not None:
                host.state, host.last_seen = "up", utcnow()
                host.down_reason = None
            s.flush()
            return host.as_dict()

    def get_host(self, name):
        with self.db.read() as s:
            return get_host(s, name).as_dict()

    def list_hosts(self):
        with self.db.read() as s:
            return [h.as_dict() for h in
                    s.scalars(select(Host).order_by(Host.name))]

    def delete_host(self, name):
        """Forget a host with no instances and no allocations."""
        with self.db.write() as s:
            host = get_host(s, name)
            busy = s.scalar(select(func.count()).select_from(Instance).where(
                Instance.host == name, Instance.deleted_at.is_(None)))
            held = s.scalar(select(func.count()).select_from(Allocation)
                            .where(Allocation.host == name))
            if busy or held:
                raise Conflict(f"host {name} still has {busy} instances and "
                               f"{held} allocations")
            s.delete(host)

    def enable_host(self, name):
        return self._set_host(name, enabled=True, disabled_reason=None)

    def disable_host(self, name, reason=None):
        return self._set_host(name, enabled=False, disabled_reason=reason)

    def mark_host_up(self, name):
        return self._set_host(name, state="up", last_seen=utcnow(),
                              down_reason=None)

    def mark_host_down(self, name):
        return self._set_host(name, state="down")

    def set_host_down_reason(self, name, reason):
        """Record why the last poll of host ``name`` failed (its first
        line); the host's state is left as it is."""
        return self._set_host(name, down_reason=None if reason is None
                              else one_line(reason, DOWN_REASON))

    def _set_host(self, name, **values):
        with self.db.write() as s:
            host = get_host(s, name)
            for key, value in values.items():
                setattr(host, key, value)
            return host.as_dict()
