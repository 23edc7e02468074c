"""Store methods: allocations, atomic capacity claims, and the host states
the scheduler reads.

A claim checks and records in one write transaction that holds the
database lock on SQLite (BEGIN IMMEDIATE) or the host's row lock elsewhere
(SELECT ... FOR UPDATE), so concurrent claims, from threads or processes,
never promise a host more than its limits.  The same transaction runs
the server-group filters again (scheduler GROUP_FILTERS) over the
group's claims as they are now, the group's row locked, so that
concurrent boots into an anti-affinity group never share a host.
"""
from sqlalchemy import func, select

from agent.common.errors import Conflict
from agent.controller.db import validate
from agent.controller.db.groups import group_hosts, group_of
from agent.controller.db.models import Allocation, Host
from agent.controller.db.session import one
from agent.controller.scheduler.filters import GROUP_FILTERS
from agent.controller.scheduler.hoststate import (HARD_POLICIES, GroupSpec,
                                                  HostState, Policy,
                                                  Request, host_limits)

RESOURCES = ("vcpus", "ram_mb", "disk_gb")
_UNITS = {"vcpus": "vCPUs", "ram_mb": "MB RAM", "disk_gb": "GB disk"}


class ClaimFailed(Conflict):
    """A host cannot take a claim (another one got there first)."""


def _group_refusal(s, host, instance_uuid):
    """Why the instance's server group keeps it off ``host`` now (the
    group's row locked until the claim commits), or None."""
    group = group_of(s, instance_uuid, lock=True)
    if group is None or group.policy not in HARD_POLICIES:
        return None
    spec = GroupSpec.from_record(group.as_dict(), group_hosts(
        s, group.id, without=instance_uuid))
    request = Request(0, 0, 0, group=spec)
    for name, check in GROUP_FILTERS:
        reason = check(HostState(name=host), request, None)
        if reason is not None:
            return f"{name}: {reason}"
    return None


def _usage(s, host_name):
    row = s.execute(select(*(func.coalesce(func.sum(getattr(Allocation, r)),
                                           0) for r in RESOURCES))
                    .where(Allocation.host == host_name)).one()
    return dict(zip(RESOURCES, row, strict=True))


class PlacementMixin:
    def claim(self, host, consumer, vcpus, ram_mb, disk_gb, limits=None,
              instance_uuid=None):
        """Allocate resources on ``host`` to ``consumer`` (an instance or
        migration uuid) if the host's total stays within ``limits``
        (scheduler Limits; default: from the host's size and
        CONF.scheduler).  Raises ClaimFailed (a Conflict) if it does not
        fit.  Claiming the same amounts again for the same consumer and
        host is a no-op; different amounts are a Conflict.  Returns the
        allocation."""
        want = {"vcpus": validate.count(vcpus, "vcpus"),
                "ram_mb": validate.count(ram_mb, "ram_mb"),
                "disk_gb": validate.count(disk_gb, "disk_gb")}
        with self.db.write() as s:
            row = one(s, select(Host).where(Host.name == host)
                      .with_for_update(), f"host {host}")
            old = s.execute(select(Allocation).where(
                Allocation.host == host, Allocation.consumer == consumer)
            ).scalar_one_or_none()
            if old is not None:
                if all(getattr(old, r) == want[r] for r in RESOURCES):
                    return old.as_dict()
                raise Conflict(f"{consumer} already holds a different "
                               f"allocation on {host}")
            if limits is None:
                limits = host_limits(row.vcpus, row.memory_mb, row.disk_gb,
                                     Policy.from_conf())
            used = _usage(s, host)
            for res in RESOURCES:
                limit = getattr(limits, res)
                if want[res] and used[res] + want[res] > limit:
                    raise ClaimFailed(
                        f"host {host} cannot take {want[res]} "
                        f"{_UNITS[res]}: {used[res]} of {limit:g} used")
            refused = _group_refusal(s, host, instance_uuid or consumer)
            if refused is not None:
                raise ClaimFailed(f"host {host}: {refused}")
            alloc = Allocation(host=host, consumer=consumer,
                               instance_uuid=instance_uuid or consumer,
                               **want)
            s.add(alloc)
            s.flush()
            return alloc.as_dict()

    def release(self, consumer, host=None):
        """Drop ``consumer``'s allocations (on ``host`` only, if given);
        returns how many."""
        with self.db.write() as s:
            stmt = select(Allocation).where(Allocation.consumer == consumer)
            if host is not None:
                stmt = stmt.where(Allocation.host == host)
            rows = list(s.scalars(stmt))
            for row in rows:
                s.delete(row)
            return len(rows)

    def move_allocations(self, from_consumer, to_consumer, host=None):
        """Hand ``from_consumer``'s allocations (on ``host``) to
        ``to_consumer`` (e.g. the source of a move from the instance to
        its migration, or back on revert); returns how many."""
        with self.db.write() as s:
            stmt = select(Allocation).where(
                Allocation.consumer == from_consumer)
            if host is not None:
                stmt = stmt.where(Allocation.host == host)
            rows = list(s.scalars(stmt))
            for row in rows:
                row.consumer = to_consumer
            return len(rows)

    def list_allocations(self, host=None, consumer=None,
                         instance_uuid=None):
        stmt = select(Allocation).order_by(Allocation.id)
        if host is not None:
            stmt = stmt.where(Allocation.host == host)
        if consumer is not None:
            stmt = stmt.where(Allocation.consumer == consumer)
        if instance_uuid is not None:
            stmt = stmt.where(Allocation.instance_uuid == instance_uuid)
        with self.db.read() as s:
            return [a.as_dict() for a in s.scalars(stmt)]

    def host_usage(self, host):
        """{vcpus, ram_mb, disk_gb} allocated on ``host``."""
        with self.db.read() as s:
            return _usage(s, host)
