"""The rebalance plan: which live migrations even out the fleet's load.
A pure function over plain records; it changes nothing.

The score is Ganeti hbal's idea, reduced to one metric: the spread of
host load, here the capacity-weighted standard deviation of the hosts'
load fractions (a host's load over its capacity; each host weighs by its
capacity, so a big host half full and a small one half full are even).
0 is perfectly even.  Metrics:

- ``cpu``: the cores the host's guests used (measured, libvirt CPU
  time; agent.controller.load) over its vCPUs;
- ``ram``: their resident memory (measured) over its usable memory;
- ``allocated``: the RAM their flavors claim over its usable memory
  (no measurement needed).

The search is hbal's greedy one: while the score is above ``threshold``
and fewer than ``max_moves`` are planned, take the single move (one
running guest to one host) that lowers the score most, and apply it to
the picture; stop when no move lowers it by at least MIN_GAIN.  A guest
moves at most once per plan (no ping-pong).  Every destination passes
the scheduler's own filters (agent.controller.scheduler.FILTERS: up and
enabled, zone, aggregates, capacity, server groups) against the picture
as it is after the moves planned before it, so a plan never breaks an
anti-affinity group or overfills a host.  Hosts that are down or
disabled take nothing; guests on them may leave (a disabled host is
left, not filled).
"""
import dataclasses
import math

from agent.controller.scheduler import NoValidHost, Request, select
from agent.controller.scheduler.hoststate import GroupSpec, host_limits

METRICS = ("cpu", "ram", "allocated")
MIN_GAIN = 0.005


@dataclasses.dataclass(frozen=True)
class Guest:
    """A guest the plan may move: ``flavor`` (vcpus, ram_mb, disk_gb,
    properties), ``cpu`` cores used and ``memory_mb`` resident (None:
    not measured yet), ``zone`` the zone it must stay in (None: any),
    ``group`` its server group's name or None, ``movable``: False for a
    guest that counts (load, groups) but may not move (not running, or
    busy with a task)."""
    uuid: str
    name: str
    host: str
    flavor: dict
    cpu: float | None = None
    memory_mb: float | None = None
    zone: str | None = None
    group: str | None = None
    movable: bool = True


@dataclasses.dataclass(frozen=True)
class Move:
    instance: str
    name: str
    source: str
    destination: str
    source_load: tuple          # (before, after) as fractions
    destination_load: tuple
    prediction: object = None   # predict_move's answer, or None


@dataclasses.dataclass(frozen=True)
class Plan:
    metric: str
    score_before: float
    score_after: float
    loads_before: dict
    loads_after: dict
    moves: tuple
    reason: str


def guest_load(guest, metric):
    """What the guest adds to its host under ``metric`` (absolute:
    cores or MiB)."""
    if metric == "cpu":
        return guest.cpu or 0.0
    if metric == "ram":
        return guest.memory_mb or 0.0
    return float(guest.flavor["ram_mb"])


def capacity(host, metric, policy):
    if metric == "cpu":
        return float(host.vcpus or 1)
    return max(host_limits(host.vcpus, host.memory_mb, host.disk_gb,
                           policy).ram_mb, 1.0)


def score(loads, capacities):
    """Capacity-weighted standard deviation of the load fractions
    ``loads`` {host: absolute load}, ``capacities`` {host: capacity}."""
    total = sum(capacities.values())
    if not total:
        return 0.0
    mean = sum(loads.values()) / total
    var = sum(c * (loads[h] / c - mean) ** 2
              for h, c in capacities.items()) / total
    return math.sqrt(var)


def _fractions(loads, capacities):
    return {h: round(loads[h] / capacities[h], 4) for h in loads}


def plan(hosts, guests, groups, policy, metric="cpu", threshold=0.1,
         max_moves=5, predict_move=None):
    """A Plan for ``hosts`` (scheduler HostState records), ``guests``
    (Guest records of every placed guest), ``groups`` ({name:
    store group record: policy, rules}), ``policy`` (scheduler Policy).
    ``predict_move(guest, source, destination)`` -> a prediction or None
    (agent.controller.prediction, wired in at merge)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    states = {h.name: dataclasses.replace(h) for h in hosts}
    caps = {n: capacity(h, metric, policy) for n, h in states.items()}
    where = {g.uuid: g.host for g in guests}
    loads = dict.fromkeys(states, 0.0)
    for g in guests:
        if g.host in loads:
            loads[g.host] += guest_load(g, metric)
    before = score(loads, caps)
    first_loads = _fractions(loads, caps)
    moves, moved = [], set()
    current = before
    reason = None
    while True:
        if current <= threshold:
            reason = (f"score {current:.3f} is at or under the threshold "
                      f"{threshold:g}")
            break
        if len(moves) >= max_moves:
            reason = f"stopped at --max-moves {max_moves}"
            break
        best = None
        for g in guests:
            if not g.movable or g.uuid in moved or \
                    where[g.uuid] not in states:
                continue
            for dest in _destinations(g, where, states, guests, groups,
                                      policy):
                trial = dict(loads)
                amount = guest_load(g, metric)
                trial[g.host] -= amount
                trial[dest] += amount
                gain = current - score(trial, caps)
                if gain >= MIN_GAIN and (best is None or gain > best[0]):
                    best = (gain, g, dest, trial)
        if best is None:
            reason = "no move lowers the score further"
            break
        _gain, g, dest, trial = best
        moves.append(Move(
            g.uuid, g.name, g.host, dest,
            (round(loads[g.host] / caps[g.host], 4),
             round(trial[g.host] / caps[g.host], 4)),
            (round(loads[dest] / caps[dest], 4),
             round(trial[dest] / caps[dest], 4)),
            predict_move(g, g.host, dest) if predict_move else None))
        _claim(states, g, dest)
        where[g.uuid] = dest
        moved.add(g.uuid)
        loads = trial
        current = score(loads, caps)
    return Plan(metric, round(before, 4), round(current, 4), first_loads,
                _fractions(loads, caps), tuple(moves), reason)


def _group_spec(guest, where, guests, groups):
    if guest.group is None or guest.group not in groups:
        return None
    counts = {}
    for other in guests:
        if other.group == guest.group and other.uuid != guest.uuid:
            host = where[other.uuid]
            counts[host] = counts.get(host, 0) + 1
    return GroupSpec.from_record(groups[guest.group], counts)


def _destinations(guest, where, states, guests, groups, policy):
    """Hosts the scheduler's filters let ``guest`` go to now."""
    f = guest.flavor
    request = Request(f["vcpus"], f["ram_mb"], f["disk_gb"],
                      dict(f.get("properties") or {}),
                      availability_zone=guest.zone,
                      ignore_hosts=frozenset({where[guest.uuid]}),
                      group=_group_spec(guest, where, guests, groups))
    try:
        return select(request, list(states.values()), policy).hosts
    except NoValidHost:
        return []


def _claim(states, guest, dest):
    f = guest.flavor
    for name, sign in ((guest.host, -1), (dest, 1)):
        s = states[name]
        s.vcpus_alloc += sign * f["vcpus"]
        s.ram_mb_alloc += sign * f["ram_mb"]
        s.disk_gb_alloc += sign * f["disk_gb"]
