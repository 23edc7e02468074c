"""Scheduler filters: ``f(host, request, policy) -> None`` when the host
passes, else the reason (short, for the operator) it cannot take the
request.  ``FILTERS`` is the order they run in (cheapest first).
"""
from agent.controller import ha_policy
from agent.controller.scheduler.extra_specs import matches
from agent.controller.scheduler.hoststate import host_limits

EXTRA_SPECS_SCOPE = "aggregate_instance_extra_specs"


def force_host(host, request, policy):
    if request.force_host is not None and host.name != request.force_host:
        return f"not the forced host {request.force_host}"
    return None


def ignore_hosts(host, request, policy):
    if host.name in request.ignore_hosts:
        return "ignored (the instance's current host)"
    return None


def compute(host, request, policy):
    """ComputeFilter: the host is up and enabled."""
    if not host.up:
        return "host is down"
    if not host.enabled:
        return f"disabled ({host.disabled_reason or 'no reason given'})"
    return None


def availability_zone(host, request, policy):
    want = request.availability_zone
    if want is not None and host.availability_zone != want:
        return f"in zone {host.availability_zone}, not {want}"
    return None


def ram(host, request, policy):
    limits = host_limits(host.vcpus, host.memory_mb, host.disk_gb, policy)
    free = limits.ram_mb - host.ram_mb_alloc
    if request.ram_mb > free:
        return f"{_n(free)} MB RAM free, {request.ram_mb} MB needed"
    return None


def vcpu(host, request, policy):
    free = host.vcpus * policy.cpu_allocation_ratio - host.vcpus_alloc
    if request.vcpus > free:
        return f"{_n(free)} vCPUs free, {request.vcpus} needed"
    return None


def disk(host, request, policy):
    free = host.disk_gb * policy.disk_allocation_ratio - host.disk_gb_alloc
    if request.disk_gb > free:
        return f"{_n(free)} GB disk free, {request.disk_gb} GB needed"
    return None


def aggregate_extra_specs(host, request, policy):
    """AggregateInstanceExtraSpecsFilter.

    Flavor properties ``aggregate_instance_extra_specs:KEY=VALUE`` and
    unscoped ``KEY=VALUE`` must be matched by the metadata ``KEY`` of one
    of the host's aggregates (VALUE may use extra_specs operators);
    properties with another scope (``hw:...``, ``quota:...``) are ignored.
    Hosts may carry metadata the flavor does not ask for.  drover's own
    keys (``ha``, ``ha_priority``: agent.controller.ha_policy) are not
    asked of hosts.
    """
    for key, want in request.properties.items():
        if key in ha_policy.KEYS:
            continue
        scope, sep, bare = key.partition(":")
        if sep:
            if scope != EXTRA_SPECS_SCOPE:
                continue
            key = bare
        have = host.metadata.get(key)
        if not have:
            return f"no aggregate metadata {key}"
        if not any(matches(v, str(want)) for v in have):
            return f"aggregate metadata {key} is not {want}"
    return None


def _n(number):
    return f"{number:g}"


FILTERS = (
    ("ForceHost", force_host),
    ("IgnoreHosts", ignore_hosts),
    ("ComputeFilter", compute),
    ("AvailabilityZoneFilter", availability_zone),
    ("RamFilter", ram),
    ("CoreFilter", vcpu),
    ("DiskFilter", disk),
    ("AggregateInstanceExtraSpecsFilter", aggregate_extra_specs),
)
