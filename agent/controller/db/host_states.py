"""Store method: the hosts as the scheduler sees them, read in one go.

This is on the path of every placement, so it is written for 10,000
hosts: one statement for the hosts with their allocations summed (an
outer join, grouped by host: the sums are computed only for the hosts
read), narrowed in SQL to the hosts that
may take the request (scheduler.prefilter), and three small ones for
aggregates, run on the driver's own cursor (rows as plain tuples, no ORM
objects and no SQLAlchemy Row wrappers: those cost more than the query
itself at that size).  Hosts in the same aggregates share one read-only
metadata dict, built once.
"""
from collections import defaultdict

from sqlalchemy import Integer, cast, func, or_, select, true

from agent.conf import CONF
from agent.controller.db.aggregates import AZ_KEY
from agent.controller.db.models import (Aggregate, AggregateHost,
                                        AggregateMetadata, Allocation, Host)
from agent.controller.scheduler.hoststate import HostState
from agent.controller.scheduler.prefilter import narrowing

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


def hosts_statement(narrow, default_zone):
    """HOSTS narrowed by a prefilter.Narrowing (None: every host)."""
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
    return stmt


_compiled = {}      # (dialect name, statement) -> compiled, for constants


def _rows(dbapi_conn, dialect, stmt):
    """Rows of ``stmt`` as the driver's tuples."""
    compiled = _compiled.get((dialect.name, stmt))
    if compiled is None:
        compiled = stmt.compile(dialect=dialect)
        if stmt in (HOSTS, AGGREGATES, METADATA, MEMBERS):
            _compiled[dialect.name, stmt] = compiled
    params = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    cur = dbapi_conn.cursor()
    try:
        cur.execute(str(compiled), params)
        return cur.fetchall()
    finally:
        cur.close()


class HostStatesMixin:
    def host_states(self, request=None):
        """Every host as a scheduler HostState, by name (allocations
        summed, zone and aggregate metadata merged; hosts of the same
        aggregates share one read-only metadata dict).  With ``request``
        (a scheduler Request), only those its prefilter.narrowing keeps:
        never one that the filters would pass."""
        default_zone = CONF.scheduler.default_availability_zone
        narrow = None if request is None else narrowing(request)
        with self.db.read() as s:
            conn = s.connection()
            raw, dialect = conn.connection.dbapi_connection, conn.dialect
            hosts = _rows(raw, dialect,
                          hosts_statement(narrow, default_zone))
            agg_names = dict(_rows(raw, dialect, AGGREGATES))
            agg_meta = defaultdict(dict)
            for agg_id, key, value in _rows(raw, dialect, METADATA):
                agg_meta[agg_id][key] = value
            member = defaultdict(list)
            for host_id, agg_id in _rows(raw, dialect, MEMBERS):
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
