"""The scheduler: pure functions over HostState records.

    from agent.controller.scheduler import Request, select
    decision = select(Request.for_flavor(flavor, ignore_hosts={src}),
                      store.host_states())
    decision.hosts          # best first
"""
from agent.controller.scheduler.hoststate import (GroupSpec, HostState,
                                                  Limits, Policy, Request,
                                                  host_limits)
from agent.controller.scheduler.selection import (Candidate, Decision,
                                               NoValidHost, Rejection, select)

__all__ = ["Candidate", "Decision", "GroupSpec", "HostState", "Limits",
           "NoValidHost", "Policy", "Rejection", "Request", "host_limits",
           "select"]
