"""Scheduler filters: ``f(host, request, policy) -> None`` when the host
passes, else the reason (short, for the operator) it cannot take the
request.  ``FILTERS`` is the order they run in (cheapest first).
"""
from agent.controller.scheduler.extra_specs import matches

# They run for every host of the fleet on every placement (10,000 hosts
# within the 50 ms of a placement): no objects made per host, and what
# depends on the request alone is computed once, on the request.


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
    """As host_limits: (total - reserved) x ratio, less what is allocated."""
    usable = host.memory_mb - policy.reserved_host_memory_mb
    free = (usable if usable > 0 else 0) * policy.ram_allocation_ratio \
        - host.ram_mb_alloc
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
    for key, want in request.aggregate_specs:
        have = host.metadata.get(key)
        if not have:
            return f"no aggregate metadata {key}"
        for value in have:
            if matches(value, want):
                break
        else:
            return f"aggregate metadata {key} is not {want}"
    return None


def server_group_anti_affinity(host, request, policy):
    """ServerGroupAntiAffinityFilter: a member of an anti-affinity group
    goes where fewer than max_server_per_host (default 1) of the group's
    other members are."""
    group = request.group
    if group is None or group.policy != "anti-affinity":
        return None
    have = group.hosts.get(host.name, 0)
    if have >= group.max_per_host:
        return (f"server group {group.name} (anti-affinity) has {have} "
                f"member{'s' if have != 1 else ''} here, at most "
                f"{group.max_per_host}")
    return None


def server_group_affinity(host, request, policy):
    """ServerGroupAffinityFilter: a member of an affinity group goes where
    the group's other members are (anywhere while it has none placed)."""
    group = request.group
    if group is None or group.policy != "affinity" or not group.hosts:
        return None
    if host.name not in group.hosts:
        return (f"server group {group.name} (affinity) is on "
                f"{', '.join(sorted(group.hosts))}")
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
    ("ServerGroupAntiAffinityFilter", server_group_anti_affinity),
    ("ServerGroupAffinityFilter", server_group_affinity),
)
# The filters a claim runs again inside its transaction (db.placement):
# they depend on other claims, which may have changed since select().
GROUP_FILTERS = (
    ("ServerGroupAntiAffinityFilter", server_group_anti_affinity),
    ("ServerGroupAffinityFilter", server_group_affinity),
)
