"""What the store may leave out when it reads host states for a request,
and the order it may read them in, so that a placement at 10,000 hosts
reads the hosts that may take it and not the whole fleet (Nova's request
filters do this for Placement: map_az_to_placement_aggregate, member_of,
and Placement's own resource query).

A Narrowing never leaves out a host that every filter would pass: each
condition is one a filter of FILTERS checks too, and select() still runs
every filter over what is read.  What it leaves out are rejected hosts,
so a placement that finds none reads the fleet again to explain why.
"""
from dataclasses import dataclass

from agent.controller.scheduler.extra_specs import exact
from agent.controller.scheduler.weighers import ram_order

# The store compares free capacity with what is needed in SQL floating
# point, the filters in Python's: it keeps hosts this much short of the
# need, for the filters to reject, so that no rounding leaves out a host
# they would pass.
SLACK = 0.5


@dataclass(frozen=True, slots=True)
class Narrowing:
    """``usable``: up and enabled only (ComputeFilter); ``host``: that
    host only (ForceHost); ``zone``: in that availability zone
    (AvailabilityZoneFilter); ``metadata``: (key, value) pairs some
    aggregate of the host must hold exactly (the operator-free
    requirements of AggregateInstanceExtraSpecsFilter); ``need``:
    (vcpus, ram_mb, disk_gb) the host must have free, less SLACK
    (CoreFilter, RamFilter, DiskFilter, with the Policy's ratios);
    ``order``: weighers.ram_order, the order of free RAM hosts may be
    read in (best first), or None."""
    usable: bool = True
    host: str | None = None
    zone: str | None = None
    metadata: tuple = ()
    need: tuple | None = None
    order: str | None = None


def narrowing(request, policy):
    """The Narrowing a Request allows under ``policy`` (a Policy)."""
    pairs = tuple((key, value) for key, value in
                  ((k, exact(want)) for k, want in request.aggregate_specs)
                  if value is not None)
    return Narrowing(usable=True, host=request.force_host,
                     zone=request.availability_zone, metadata=pairs,
                     need=(request.vcpus, request.ram_mb, request.disk_gb),
                     order=ram_order(request, policy))
