"""Weighers: ``f(host, request, policy) -> raw weight``, higher is better.
``WEIGHERS`` lists them with their multiplier; each one's raw weights are
normalised to 0..1 over the candidates (all equal: 1.0), multiplied and
summed, and the sums normalised to 0..1 again (Nova's weigh_objects).

- RAMWeigher: ``spread`` prefers the host with the most free RAM, ``pack``
  the one with the least (Nova's RAMWeigher with a positive or negative
  multiplier).
- ServerGroupSoftAffinityWeigher / ServerGroupSoftAntiAffinityWeigher:
  a member of a soft-affinity group prefers hosts with more of its
  group's members, of a soft-anti-affinity group hosts with fewer.  They
  never reject a host.  Their multiplier (GROUP_MULTIPLIER) is above the
  RAM weigher's so that the group's wish wins over free RAM and RAM only
  breaks ties between hosts the group likes equally.
"""
GROUP_MULTIPLIER = 2.0


def free_ram_mb(host, policy):
    usable = max(host.memory_mb - policy.reserved_host_memory_mb, 0)
    return usable * policy.ram_allocation_ratio - host.ram_mb_alloc


def ram(host, request, policy):
    sign = -1.0 if policy.weigher == "pack" else 1.0
    return sign * free_ram_mb(host, policy)


def _members_here(host, request, policy_name):
    group = request.group if request is not None else None
    if group is None or group.policy != policy_name:
        return 0.0
    return float(group.hosts.get(host.name, 0))


def soft_affinity(host, request, policy):
    return _members_here(host, request, "soft-affinity")


def soft_anti_affinity(host, request, policy):
    return -_members_here(host, request, "soft-anti-affinity")


WEIGHERS = (
    ("RAMWeigher", ram, 1.0),
    ("ServerGroupSoftAffinityWeigher", soft_affinity, GROUP_MULTIPLIER),
    ("ServerGroupSoftAntiAffinityWeigher", soft_anti_affinity,
     GROUP_MULTIPLIER),
)


def _normalised(raw):
    low, high = min(raw), max(raw)
    span = high - low
    return [(r - low) / span if span else 1.0 for r in raw]


def ram_order(request, policy):
    """``"spread"`` (most free RAM first) or ``"pack"`` (least first) when
    weigh() ranks the hosts for ``request`` by free RAM alone, ties by
    name; None when another weigher of WEIGHERS can tell hosts apart (the
    request's server group is soft-affinity or soft-anti-affinity and has
    members placed).  The store then reads hosts in that order and a
    placement stops at the first page holding a host that passes
    (agent.controller.placement): the best host without weighing the
    fleet.  Keep in step with WEIGHERS (test_scheduler_order checks)."""
    group = request.group
    if group is not None and group.hosts and group.policy in (
            "soft-affinity", "soft-anti-affinity"):
        return None
    return "pack" if policy.weigher == "pack" else "spread"


def weigh(hosts, policy, request=None):
    """[(weight, host)] for ``hosts``, best first (ties: by name)."""
    if not hosts:
        return []
    total = [0.0] * len(hosts)
    for _name, weigher, multiplier in WEIGHERS:
        raw = [weigher(h, request, policy) for h in hosts]
        for i, w in enumerate(_normalised(raw)):
            total[i] += multiplier * w
    weights = _normalised(total)
    return sorted(zip(weights, hosts, strict=True),
                  key=lambda p: (-p[0], p[1].name))
