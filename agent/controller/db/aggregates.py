"""Store methods: host aggregates and availability zones.

A host is in at most one availability zone: the ``availability_zone``
metadata of its aggregates (hosts in none are in
CONF.scheduler.default_availability_zone).  Changes that would put a host
in two zones are refused, and so are changes that would move a host that
has instances to another zone (its instances' zone would become false).
"""
from sqlalchemy import func, select

from agent.common.errors import Conflict
from agent.conf import CONF
from agent.controller.db import validate
from agent.controller.db.hosts import get_host
from agent.controller.db.models import (Aggregate, AggregateHost,
                                        AggregateMetadata, Instance)
from agent.controller.db.session import one

AZ_KEY = "availability_zone"


def _get(s, name):
    return one(s, select(Aggregate).where(Aggregate.name == name),
               f"aggregate {name}")


def _zones(s, host_id, without=None):
    """{zone: aggregate name} of the host's aggregates (but ``without``)."""
    rows = s.execute(
        select(AggregateMetadata.value, Aggregate.name)
        .join(Aggregate, Aggregate.id == AggregateMetadata.aggregate_id)
        .join(AggregateHost, AggregateHost.aggregate_id == Aggregate.id)
        .where(AggregateHost.host_id == host_id,
               AggregateMetadata.key == AZ_KEY))
    return {zone: agg for zone, agg in rows if agg != without}


def _effective(zones):
    return next(iter(zones), None) or \
        CONF.scheduler.default_availability_zone


def _check_move(s, host, before, after):
    """Refuse moving a host that has instances from zone ``before`` to
    ``after``."""
    if before == after:
        return
    count = s.scalar(select(func.count()).select_from(Instance).where(
        Instance.host == host.name, Instance.deleted_at.is_(None)))
    if count:
        raise Conflict(f"host {host.name} has {count} instances: its "
                       f"availability zone cannot change from {before} "
                       f"to {after}")


class AggregatesMixin:
    def create_aggregate(self, name, availability_zone=None):
        validate.name(name, "aggregate name")
        with self.db.write() as s:
            if s.scalar(select(Aggregate.id).where(Aggregate.name == name)):
                raise Conflict(f"aggregate {name} already exists")
            agg = Aggregate(name=name)
            if availability_zone is not None:
                validate.name(availability_zone, "availability zone")
                agg.metadata_items.append(AggregateMetadata(
                    key=AZ_KEY, value=availability_zone))
            s.add(agg)
            s.flush()
            return agg.as_dict()

    def delete_aggregate(self, name):
        """Delete an aggregate that has no hosts (as Nova)."""
        with self.db.write() as s:
            agg = _get(s, name)
            if agg.hosts:
                raise Conflict(f"aggregate {name} still has hosts: "
                               + ", ".join(h.name for h in agg.hosts))
            s.delete(agg)

    def get_aggregate(self, name):
        """{name, availability_zone, hosts: [...], metadata: {...}}"""
        with self.db.read() as s:
            return _get(s, name).as_dict()

    def list_aggregates(self):
        with self.db.read() as s:
            return [a.as_dict() for a in
                    s.scalars(select(Aggregate).order_by(Aggregate.name))]

    def set_aggregate_metadata(self, name, metadata):
        """Set keys of ``metadata`` (a dict); an ``availability_zone`` key
        is checked against the zones of the aggregate's hosts."""
        items = {validate.key(k, "metadata key"):
                 validate.value(v, f"value of {k}")
                 for k, v in metadata.items()}
        with self.db.write() as s:
            agg = _get(s, name)
            if AZ_KEY in items:
                zone = validate.name(items[AZ_KEY], "availability zone")
                self._check_zone_change(s, agg, zone)
            current = {m.key: m for m in agg.metadata_items}
            for key, value in items.items():
                if key in current:
                    current[key].value = value
                else:
                    agg.metadata_items.append(
                        AggregateMetadata(key=key, value=value))
            s.flush()
            return agg.as_dict()

    def unset_aggregate_metadata(self, name, keys):
        with self.db.write() as s:
            agg = _get(s, name)
            if AZ_KEY in keys:
                self._check_zone_change(s, agg, None)
            agg.metadata_items = [m for m in agg.metadata_items
                                  if m.key not in keys]
            s.flush()
            return agg.as_dict()

    def add_aggregate_host(self, name, host_name):
        with self.db.write() as s:
            agg, host = _get(s, name), get_host(s, host_name)
            if any(h.id == host.id for h in agg.hosts):
                raise Conflict(f"host {host_name} is already in aggregate "
                               f"{name}")
            zone = agg.meta.get(AZ_KEY)
            others = _zones(s, host.id)
            if zone is not None:
                for other, other_agg in others.items():
                    if other != zone:
                        raise Conflict(
                            f"host {host_name} is in availability zone "
                            f"{other} (aggregate {other_agg}); aggregate "
                            f"{name} is in {zone}")
                _check_move(s, host, _effective(others), zone)
            agg.hosts.append(host)
            s.flush()
            return agg.as_dict()

    def remove_aggregate_host(self, name, host_name):
        with self.db.write() as s:
            agg, host = _get(s, name), get_host(s, host_name)
            if not any(h.id == host.id for h in agg.hosts):
                raise Conflict(f"host {host_name} is not in aggregate "
                               f"{name}")
            if AZ_KEY in agg.meta:
                _check_move(s, host, _effective(_zones(s, host.id)),
                            _effective(_zones(s, host.id, without=name)))
            agg.hosts = [h for h in agg.hosts if h.id != host.id]
            s.flush()
            return agg.as_dict()

    def availability_zones(self):
        """Every zone drover knows: the default zone and every zone an
        aggregate names."""
        with self.db.read() as s:
            named = set(s.scalars(select(AggregateMetadata.value).where(
                AggregateMetadata.key == AZ_KEY)))
        return named | {CONF.scheduler.default_availability_zone}

    def host_availability_zone(self, host_name):
        """The zone host ``host_name`` is in."""
        with self.db.read() as s:
            return _effective(_zones(s, get_host(s, host_name).id))

    @staticmethod
    def _check_zone_change(s, agg, zone):
        """Aggregate ``agg`` is to be in ``zone`` (None: in none)."""
        for host in agg.hosts:
            others = _zones(s, host.id, without=agg.name)
            for other, other_agg in others.items():
                if zone is not None and other != zone:
                    raise Conflict(
                        f"host {host.name} of aggregate {agg.name} is in "
                        f"availability zone {other} (aggregate "
                        f"{other_agg}); it cannot also be in {zone}")
            before = _effective(_zones(s, host.id))
            after = zone or _effective(others)
            _check_move(s, host, before, after)
