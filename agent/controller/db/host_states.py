"""Store method: the hosts as the scheduler sees them, read in one go.

This is on the path of every placement, so it is written for 10,000
hosts: one statement for the hosts with their allocations summed (an
outer join, grouped by host: the sums are computed only for the hosts
read), narrowed in SQL to the hosts that may take the request
(scheduler.prefilter), for a placement its best hosts first (by free
RAM, as weighers.ram_order), and three small ones for
aggregates, run on the driver's own cursor (rows as plain tuples, no ORM
objects and no SQLAlchemy Row wrappers: those cost more than the query
itself at that size).  Hosts in the same aggregates share one read-only
metadata dict, built once.
"""
import functools
from collections import defaultdict

from sqlalchemy import (Float, Integer, and_, case, cast, func, literal,
                        or_, select, true)

from agent.conf import CONF
from agent.controller.db.aggregates import AZ_KEY
from agent.controller.db.models import (Aggregate, AggregateHost,
                                        AggregateMetadata, Allocation, Host)
from agent.controller.scheduler.hoststate import HostState, Policy
from agent.controller.scheduler.prefilter import SLACK, narrowing

HOSTS = (select(Host.id, Host.name, Host.state == "up", Host.enabled,
                Host.disabled_reason, Host.vcpus, Host.memory_mb,
                Host.disk_gb,
                *(cast(func.coalesce(func.sum(col), 0), Integer)
                  for col in (Allocation.vcpus, Allocation.ram_mb,
                              Allocation.disk_gb)))
         .outerjoin(Allocation, Allocation.host == Host.name)
         .group_by(Host.id).order_by(Host.name))
AGGREGATES = select(Aggregate.id, Aggregate.name)
METADATA = select(AggregateMetadata.aggregate_id, AggregateMetadata.key,
                  AggregateMetadata.value)
MEMBERS = select(AggregateHost.host_id, AggregateHost.aggregate_id)


def _holding(key, value=None):
    """Ids of the hosts in an aggregate with metadata ``key`` (=
    ``value``)."""
    stmt = (select(AggregateHost.host_id)
            .join(AggregateMetadata, AggregateMetadata.aggregate_id
                  == AggregateHost.aggregate_id)
            .where(AggregateMetadata.key == key))
    if value is not None:
        stmt = stmt.where(AggregateMetadata.value == value)
    return stmt


def _free(total, column, ratio, reserved=None):
    """SQL for the free capacity of a resource as the filters compute it:
    (total [- reserved, at least 0]) x ratio, less what is allocated."""
    usable = total
    if reserved is not None:
        usable = case((total - reserved > 0, total - reserved), else_=0)
    return usable * literal(float(ratio), Float) \
        - func.coalesce(func.sum(column), 0)


# Building the statement costs more than running it on a page: requests
# repeat (flavors, zones, pages), their statements are kept.
@functools.lru_cache(maxsize=256)
def hosts_statement(narrow, default_zone, policy=None, dialect="sqlite",
                    limit=None):
    """HOSTS narrowed by a prefilter.Narrowing (None: every host, by
    name).  With its ``need``, ``policy`` (a scheduler Policy) gives the
    ratios; with its ``order`` and ``limit``, the ``limit`` best hosts by
    free RAM (ties by name, in code point order as Python's)."""
    stmt = HOSTS
    if narrow is None:
        return stmt
    if narrow.usable:
        stmt = stmt.where(Host.state == "up", Host.enabled == true())
    if narrow.host is not None:
        stmt = stmt.where(Host.name == narrow.host)
    if narrow.zone is not None:
        in_zone = Host.id.in_(_holding(AZ_KEY, narrow.zone))
        if narrow.zone == default_zone:     # or in no zone at all
            in_zone = or_(in_zone, Host.id.not_in(_holding(AZ_KEY)))
        stmt = stmt.where(in_zone)
    for key, value in narrow.metadata:
        stmt = stmt.where(Host.id.in_(_holding(key, value)))
    free_ram = _free(Host.memory_mb, Allocation.ram_mb,
                     policy.ram_allocation_ratio,
                     policy.reserved_host_memory_mb)
    if narrow.need is not None:
        vcpus, ram_mb, disk_gb = narrow.need
        stmt = stmt.having(and_(
            _free(Host.vcpus, Allocation.vcpus,
                  policy.cpu_allocation_ratio) >= vcpus - SLACK,
            free_ram >= ram_mb - SLACK,
            _free(Host.disk_gb, Allocation.disk_gb,
                  policy.disk_allocation_ratio) >= disk_gb - SLACK))
    if narrow.order is not None and limit is not None:
        name = Host.name.collate("C") if dialect == "postgresql" \
            else Host.name
        stmt = stmt.order_by(None).order_by(
            free_ram.desc() if narrow.order == "spread" else free_ram.asc(),
            name).limit(limit)
    return stmt


_compiled = {}      # (dialect name, statement) -> compiled, for constants
CONSTANT = (HOSTS, AGGREGATES, METADATA, MEMBERS)


def _rows(conn, stmt):
    """Rows of ``stmt`` as tuples: the constant statements (those of
    many rows) compiled once and run on the driver's own cursor, the
    others through SQLAlchemy, whose cache compiles each shape once."""
    if stmt not in CONSTANT:
        return conn.execute(stmt).all()
    dialect = conn.dialect
    compiled = _compiled.get((dialect.name, stmt))
    if compiled is None:
        compiled = _compiled[dialect.name, stmt] = stmt.compile(
            dialect=dialect)
    params = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute(str(compiled), params)
        return cur.fetchall()
    finally:
        cur.close()


class HostStatesMixin:
    def host_states(self, request=None, limit=None, policy=None):
        """Every host as a scheduler HostState, by name (allocations
        summed, zone and aggregate metadata merged; hosts of the same
        aggregates share one read-only metadata dict).  With ``request``
        (a scheduler Request), only those its prefilter.narrowing keeps
        under ``policy`` (default: Policy.from_conf()): never one that
        the filters would pass.  With ``limit`` too, when the narrowing
        has an order: the ``limit`` best by weight (placement reads
        those first)."""
        default_zone = CONF.scheduler.default_availability_zone
        policy = policy or Policy.from_conf()
        narrow = None if request is None else narrowing(request, policy)
        with self.db.read() as s:
            conn = s.connection()
            if conn.dialect.name == "postgresql":
                # Hash joins whatever the statistics say: before
                # autovacuum's first ANALYZE of a fleet loaded at once the
                # planner nests loops over 10,000 hosts (60 ms, not 15).
                conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
            hosts = _rows(conn, hosts_statement(
                narrow, default_zone, policy, conn.dialect.name, limit))
            agg_names = dict(_rows(conn, AGGREGATES))
            agg_meta = defaultdict(dict)
            for agg_id, key, value in _rows(conn, METADATA):
                agg_meta[agg_id][key] = value
            members = MEMBERS
            if limit is not None:       # of the hosts read only
                members = members.where(AggregateHost.host_id.in_(
                    [row[0] for row in hosts]))
            member = defaultdict(list)
            for host_id, agg_id in _rows(conn, members):
                member[host_id].append(agg_id)
        # sorted aggregate ids -> (names, metadata, zone)
        merged = {(): ((), {}, default_zone)}
        states = []
        append = states.append
        for (host_id, name, up, enabled, reason, vcpus, memory_mb,
             disk_gb, v, r, d) in hosts:
            aggs = member.get(host_id)
            aggs = tuple(sorted(aggs)) if aggs else ()
            group = merged.get(aggs)
            if group is None:
                group = merged[aggs] = _merge(aggs, agg_names, agg_meta,
                                              default_zone)
            names, meta, zone = group
            append(HostState(name, bool(up), bool(enabled), reason, vcpus,
                             memory_mb, disk_gb, v, r, d, zone, names,
                             meta))
        return states


def _merge(aggs, agg_names, agg_meta, default_zone):
    """(aggregate names, merged metadata, zone) of a set of aggregates."""
    meta = defaultdict(set)
    for agg_id in aggs:
        for key, value in agg_meta[agg_id].items():
            meta[key].add(value)
    meta = {k: frozenset(v) for k, v in meta.items()}
    zone = next(iter(meta.get(AZ_KEY, ())), default_zone)
    return tuple(sorted(agg_names[a] for a in aggs)), meta, zone
