"""Weighers: higher weight is better.  ``spread`` prefers the host with the
most free RAM, ``pack`` the one with the least (Nova's RAMWeigher with a
positive or negative multiplier).  Weights are normalised to 0..1 over the
candidates."""


def free_ram_mb(host, policy):
    usable = max(host.memory_mb - policy.reserved_host_memory_mb, 0)
    return usable * policy.ram_allocation_ratio - host.ram_mb_alloc


def weigh(hosts, policy):
    """[(weight, host)] for ``hosts``, best first (ties: by name)."""
    sign = -1.0 if policy.weigher == "pack" else 1.0
    raw = [sign * free_ram_mb(h, policy) for h in hosts]
    if not raw:
        return []
    low, high = min(raw), max(raw)
    span = high - low
    weights = [(r - low) / span if span else 1.0 for r in raw]
    pairs = sorted(zip(weights, hosts, strict=True),
                   key=lambda p: (-p[0], p[1].name))
    return pairs
