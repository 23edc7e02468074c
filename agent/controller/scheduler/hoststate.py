"""What the scheduler knows of a host and of a request: plain records the
store builds (``Store.host_states()``), so that filters and weighers are
pure functions."""
from dataclasses import dataclass, field

from agent.conf import CONF
from agent.controller.scheduler.extra_specs import scoped


@dataclass(frozen=True, slots=True)
class Policy:
    """Allocation ratios and reservations (from CONF.scheduler)."""
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    weigher: str = "spread"

    @classmethod
    def from_conf(cls, conf=CONF):
        s = conf.scheduler
        return cls(s.cpu_allocation_ratio, s.ram_allocation_ratio,
                   s.disk_allocation_ratio, s.reserved_host_memory_mb,
                   s.weigher)


@dataclass(frozen=True, slots=True)
class Limits:
    """The most a host may have allocated, per resource."""
    vcpus: float
    ram_mb: float
    disk_gb: float


def host_limits(vcpus, memory_mb, disk_gb, policy):
    """Capacity of a host: (total - reserved) x allocation ratio, as
    Placement computes it."""
    return Limits(
        vcpus=vcpus * policy.cpu_allocation_ratio,
        ram_mb=max(memory_mb - policy.reserved_host_memory_mb, 0)
        * policy.ram_allocation_ratio,
        disk_gb=disk_gb * policy.disk_allocation_ratio)


@dataclass(slots=True)
class HostState:
    """A host as the scheduler sees it.  ``*_alloc``: sums of the
    allocations on it (what drover has promised), not what the agent
    measured."""
    name: str
    up: bool = True
    enabled: bool = True
    disabled_reason: str | None = None
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0
    vcpus_alloc: int = 0
    ram_mb_alloc: int = 0
    disk_gb_alloc: int = 0
    availability_zone: str = "nova"
    aggregates: tuple = ()
    # Aggregate metadata, merged over the host's aggregates:
    # key -> set of values.
    metadata: dict = field(default_factory=dict)


POLICIES = ("affinity", "anti-affinity", "soft-affinity",
            "soft-anti-affinity")
HARD_POLICIES = ("affinity", "anti-affinity")


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """The server group of the instance placed: its name, policy,
    ``max_per_host`` (anti-affinity's max_server_per_host rule, 1 by
    default) and ``hosts``: host -> how many of its OTHER members hold an
    allocation there (a member in the middle of a move counts on both
    ends)."""
    name: str
    policy: str
    max_per_host: int = 1
    hosts: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, group, hosts):
        """A spec from a store record (``name``, ``policy``, ``rules``)."""
        rules = group.get("rules") or {}
        return cls(group["name"], group["policy"],
                   int(rules.get("max_server_per_host", 1)), dict(hosts))

    def with_member_on(self, host):
        """The spec once one more member is on ``host`` (a planned
        move)."""
        hosts = dict(self.hosts)
        hosts[host] = hosts.get(host, 0) + 1
        return GroupSpec(self.name, self.policy, self.max_per_host, hosts)

    def without_member_on(self, host):
        hosts = dict(self.hosts)
        if hosts.get(host, 0) > 1:
            hosts[host] -= 1
        else:
            hosts.pop(host, None)
        return GroupSpec(self.name, self.policy, self.max_per_host, hosts)


@dataclass(frozen=True, slots=True)
class Request:
    """What to place.  ``properties``: the flavor's properties (see
    filters.aggregate_extra_specs); ``availability_zone``: None for any;
    ``ignore_hosts``: e.g. the source of a move; ``force_host``: only this
    host is considered (its filters still run); ``group``: the
    instance's server group (GroupSpec) or None."""
    vcpus: int
    ram_mb: int
    disk_gb: int
    properties: dict = field(default_factory=dict)
    availability_zone: str | None = None
    ignore_hosts: frozenset = frozenset()
    force_host: str | None = None
    group: GroupSpec | None = None
    # Derived from ``properties``, once (filters run per host).
    aggregate_specs: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "aggregate_specs",
                           scoped(self.properties))

    @classmethod
    def for_flavor(cls, flavor, **kwargs):
        """A request for a flavor dict (``vcpus``, ``ram_mb``, ``disk_gb``,
        ``properties``)."""
        return cls(flavor["vcpus"], flavor["ram_mb"], flavor["disk_gb"],
                   dict(flavor.get("properties") or {}), **kwargs)
