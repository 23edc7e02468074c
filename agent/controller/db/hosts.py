"""Store methods: hosts."""
from sqlalchemy import bindparam, func, select, update

from agent.common.errors import Conflict, InvalidInput, one_line
from agent.controller import fencing
from agent.controller.db import validate
from agent.controller.db.models import (Allocation, Host, Instance,
                                        Migration, utcnow)
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
        ``facts`` (keys in FACTS, others ignored) it is also seen now, the
        reason of its last failed poll is forgotten, and it is marked up
        unless it is fenced or set down (fencing.state_when_seen: only
        host_returned or the operator end those)."""
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
                host.state = fencing.state_when_seen(
                    {"state": host.state, "forced_down": host.forced_down})
                host.last_seen, host.down_reason = utcnow(), None
            s.flush()
            return host.as_dict()

    def hosts_seen(self, seen):
        """Hosts that answered a poll with nothing else new: {name: when
        (a UTC datetime)}, their last_seen set in one transaction (a poll
        cycle's; upsert_host is one host's)."""
        stmt = (update(Host.__table__)
                .where(Host.__table__.c.name == bindparam("seen_name"))
                .values(last_seen=bindparam("seen_at")))
        with self.db.write() as s:
            s.connection().execute(stmt, [
                {"seen_name": name, "seen_at": when}
                for name, when in seen.items()])

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
        """Seen now: up, unless fenced or set down (as upsert_host)."""
        with self.db.write() as s:
            host = get_host(s, name)
            host.state = fencing.state_when_seen(host.as_dict())
            host.last_seen, host.down_reason = utcnow(), None
            return host.as_dict()

    def mark_host_down(self, name):
        """Unreachable too long: down (a fenced host stays fenced)."""
        with self.db.write() as s:
            host = get_host(s, name)
            host.state = fencing.state_when_missed(host.as_dict())
            return host.as_dict()

    # -- fencing (agent.controller.fencing) ------------------------------

    def set_host_forced_down(self, name, forced_down):
        """The operator's word.  True (``host set --down``): the host is
        off; it counts as down (an up host becomes "down") until cleared.
        False (``host set --up``): clears it and a fence (a fenced host
        goes back to "down", not up: the poller's return path decides);
        Conflict while evacuations from the host are unfinished, checked
        in the same transaction."""
        with self.db.write() as s:
            host = get_host(s, name)
            if forced_down:
                host.forced_down = True
                if host.state == "up":
                    host.state = "down"
                return host.as_dict()
            migrations = [m.as_dict() for m in s.scalars(
                select(Migration).where(Migration.type == "evacuation",
                                        Migration.source_host == name))]
            refusal = fencing.clear_refusal(host.as_dict(), migrations)
            if refusal:
                raise Conflict(refusal)
            host.forced_down = False
            if host.state == "fenced":
                host.state = "down"
            host.fenced_at, host.fence_error = None, None
            return host.as_dict()

    def mark_host_fenced(self, name):
        """Its fence agent reported it off: fenced now (sticky)."""
        return self._set_host(name, state="fenced", fenced_at=utcnow(),
                              fence_error=None)

    def fence_failed(self, name, reason):
        """A fence of the host failed: it is not fenced (a fenced one
        goes back to "down"), and ``reason`` is kept to be shown."""
        with self.db.write() as s:
            host = get_host(s, name)
            if host.state == "fenced":
                host.state, host.fenced_at = "down", None
            host.fence_error = one_line(reason, DOWN_REASON)
            return host.as_dict()

    def host_returned(self, name):
        """The host is back and reconciled: up, no longer fenced nor set
        down (the reconcile of a returning host calls this)."""
        return self._set_host(name, state="up", fenced_at=None,
                              forced_down=False, fence_error=None,
                              last_seen=utcnow(), down_reason=None)

    def set_fence_method(self, name, agent, options=None):
        """The host's fence agent (a program name or an absolute path) and
        its options (key -> one-line value); ``agent`` None clears both."""
        if agent is None:
            if options:
                raise InvalidInput("fence options need a fence agent")
            return self._set_host(name, fence_agent=None, fence_options={})
        return self._set_host(name, fence_agent=fencing.check_agent(agent),
                              fence_options=fencing.check_options(options))

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
