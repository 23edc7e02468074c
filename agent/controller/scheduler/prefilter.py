"""What the store may leave out when it reads host states for a request,
so that a placement at 10,000 hosts reads the hosts that may take it and
not the whole fleet (Nova's request filters do this for Placement:
map_az_to_placement_aggregate, member_of).

A Narrowing never leaves out a host that every filter would pass: each
condition is one a filter of FILTERS checks too, and select() still runs
every filter over what is read.  What it leaves out are rejected hosts,
so a placement that finds none reads the fleet again to explain why.
"""
from dataclasses import dataclass

from agent.controller.scheduler.extra_specs import exact


@dataclass(frozen=True, slots=True)
class Narrowing:
    """``usable``: up and enabled only (ComputeFilter); ``host``: that
    host only (ForceHost); ``zone``: in that availability zone
    (AvailabilityZoneFilter); ``metadata``: (key, value) pairs some
    aggregate of the host must hold exactly (the operator-free
    requirements of AggregateInstanceExtraSpecsFilter)."""
    usable: bool = True
    host: str | None = None
    zone: str | None = None
    metadata: tuple = ()


def narrowing(request):
    """The Narrowing a Request allows."""
    pairs = tuple((key, value) for key, value in
                  ((k, exact(want)) for k, want in request.aggregate_specs)
                  if value is not None)
    return Narrowing(usable=True, host=request.force_host,
                     zone=request.availability_zone, metadata=pairs)
