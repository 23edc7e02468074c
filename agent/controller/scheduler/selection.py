"""Placement: filter, weigh, explain."""
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.common.errors import DroverError
from agent.controller.scheduler.filters import FILTERS
from agent.controller.scheduler.hoststate import Policy
from agent.controller.scheduler.weighers import weigh

SHOWN_PER_FILTER = 3


class Candidate(NamedTuple):      # tuples: cheap to make by thousands
    host: str
    weight: float


class Rejection(NamedTuple):
    filter: str
    reason: str


@dataclass
class Decision:
    """``candidates``: best first; ``rejected``: host -> why."""
    candidates: list = field(default_factory=list)
    rejected: dict = field(default_factory=dict)

    @property
    def hosts(self):
        return [c.host for c in self.candidates]

    def explain(self):
        """Why hosts were rejected, compactly: per filter, a few hosts
        with their reason and how many more."""
        groups = {}
        for host, rej in self.rejected.items():
            if rej.filter != "ForceHost":
                groups.setdefault(rej.filter, []).append((host, rej.reason))
        parts = []
        for name, items in groups.items():
            shown = ", ".join(f"{h} ({r})"
                              for h, r in items[:SHOWN_PER_FILTER])
            more = len(items) - SHOWN_PER_FILTER
            parts.append(f"{name}: {shown}"
                         + (f" and {more} more" if more > 0 else ""))
        return "; ".join(parts)


class NoValidHost(DroverError):
    """No host can take the request (exit 1)."""

    def __init__(self, decision, detail=None):
        self.decision = decision
        why = detail or decision.explain() or "no hosts"
        super().__init__(f"No valid host was found: {why}")


def select(request, hosts, policy=None):
    """Filter ``hosts`` (HostState records) for ``request`` and weigh the
    survivors.  Returns a Decision; raises NoValidHost when none is left.
    ``policy`` defaults to Policy.from_conf()."""
    policy = policy or Policy.from_conf()
    decision = Decision()
    rejected = decision.rejected
    passed = []
    for host in hosts:
        for name, check in FILTERS:
            reason = check(host, request, policy)
            if reason is not None:
                rejected[host.name] = Rejection(name, reason)
                break
        else:
            passed.append(host)
    if not passed:
        detail = None
        if request.force_host is not None and all(
                h.name != request.force_host for h in hosts):
            detail = f"forced host {request.force_host} is not known"
        raise NoValidHost(decision, detail)
    decision.candidates = [Candidate(h.name, w)
                           for w, h in weigh(passed, policy, request)]
    return decision
