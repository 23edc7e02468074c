"""When has a host without power management fenced itself?

``self_fence_verdict`` (pure) answers for the controller; the agent's
half of the same rule is agent.host.lease.should_fence.  Recovery
(agent.controller.ops.recover_host) evacuates a host without a fence
agent only on "fenced"; "wait", "alive" and "unknown" evacuate nothing.

The rule, on both sides: **a host whose lease has lapsed and that cannot
reach a majority of its peer hosts is the isolated one; it destroys its
HA guests and starts nothing until the controller has reconciled it.**
A host that still reaches a majority of its peers keeps everything
running, lease or no lease: the fault lies between it and the
controller (or the controller is down), and no one else will start its
guests.

Argued from the two promises (a guest never runs on two hosts; the only
copy of a disk is never deleted) and the issue's guarantees:

- **(a) the lease is over on the host.**  The controller counts from the
  moment a renewal was *acknowledged* (``last_granted``): the agent's
  lease began when it received that renewal, earlier, so it ends no
  later than ``last_granted + lease_time``.  The agent checks once per
  probe interval, so it fences within one ``probe_interval`` of the
  lapse; ``margin`` covers the drift of two monotonic clocks over one
  lease and the seconds the agent takes to destroy its HA guests.  So
  (a) is ``last_granted + lease_time + probe_interval + margin``.  Both
  are monotonic clocks (a wall-clock jump moves neither).  A controller
  that has restarted knows no grant: its LeaseBook counts every host as
  granted when it starts leading (a grant the old controller made was
  earlier still).
- **(b) a majority of the other hosts cannot reach it**, and have not
  for ``peer_timeout + 2 * probe_interval + margin`` seconds.  Peers
  probe each other over TCP (a connection needs both directions), so a
  peer that has not heard from the host for that long is a peer the
  host has not heard from for at least ``peer_timeout + margin`` (their
  last answers differ by one probe interval at most): the host counts
  it unreachable, checks every probe interval, and has had ``margin``
  seconds to destroy its HA guests.  If a majority of its peers lost
  it, it reaches at most a minority: by its own rule it fenced itself.
  The host's fence check needs both (a) and (b); both are over, with a
  round and ``margin`` to spare, when the verdict is "fenced".
- **Peers that still reach it**: "alive".  It reaches them too, so it
  does not fence itself, and evacuating would run its guests twice.
- **Too few answers**: "unknown".  The peers that do not answer the
  controller cannot speak for the host (they may be beside it, cut off
  with it); an opinion needs a majority of all peers (``peer_count``),
  not of those that answered.  A host without peers is always
  "unknown": its lease lapsing cannot tell its isolation from the
  controller's, and its agent never fences itself (guarantee 2).
- **A split** (some peers reach it, some lost it, no majority either
  way: a partial partition): "unknown".  The host may have fenced
  itself, or not; guarantee 4: evacuate nothing and say why.

**A switch outage that cuts every host from every other and from the
controller, for longer than the lease.**  Each host sees the same thing
an isolated host sees: no lease, no majority.  From inside a host the two
cannot be told apart, so drover does what the rule says: every host
destroys its HA guests once its lease and ``peer_timeout`` are over.
Not doing so would cost one of the promises: either an isolated host
would never count as fenced (no self-fence recovery at all), or one
would be counted fenced while its guests run (a guest on two hosts).
What drover does to keep this from being Proxmox's fleet-wide reboot:

- a blip shorter than ``lease_time`` kills nothing (guarantee 2: the
  lease is renewed every ``renew_interval`` and outlives the blip);
- only HA guests of hosts *without a fence agent* are destroyed (the
  controller sends an empty HA list to a host it can power off; it
  never needs that host to fence itself), non-HA guests keep running,
  and the host itself is never rebooted;
- the controller, cut off too, hears no peer and answers "unknown":
  nothing is evacuated during the outage, so each HA guest's only copy
  stays on its own host;
- when the network returns, each host answers "fenced", is reconciled
  (agent.controller.return_host: only guests that provably run elsewhere
  are removed), its lease is cleared (``host.lease_clear``), and the HA
  guests it destroyed are started again on that host, once.
"""
import dataclasses

FENCED = "fenced"
WAIT = "wait"
ALIVE = "alive"
UNKNOWN = "unknown"
STATES = (FENCED, WAIT, ALIVE, UNKNOWN)


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: str
    reason: str


def majority(count):
    """More than half of ``count``."""
    return count // 2 + 1


def isolation_s(peer_timeout, probe_interval, margin):
    """Seconds a peer must have gone without an answer from a host before
    it speaks for that host having fenced itself (see (b) above)."""
    return peer_timeout + 2 * probe_interval + margin


def self_fence_verdict(now, last_granted, lease_time, margin, peer_views,
                       peer_count, *, peer_timeout=4.0, probe_interval=2.0):
    """Whether the host has fenced itself.

    ``now``, ``last_granted``: the controller's monotonic clock (the last
    renewal the host acknowledged; None: none known).  ``peer_views``:
    {peer: seconds since that peer last heard from the host, or None: no
    opinion yet} from the peers that answered the controller;
    ``peer_count``: how many other hosts there are."""
    if peer_count <= 0:
        return Verdict(UNKNOWN, "the host has no peer hosts: its isolation "
                                "cannot be told from the controller's")
    need = majority(peer_count)
    views = {p: s for p, s in peer_views.items() if s is not None}
    lost_for = isolation_s(peer_timeout, probe_interval, margin)
    reach = sorted(p for p, s in views.items() if s < peer_timeout)
    lost = sorted(p for p, s in views.items() if s >= lost_for)
    losing = sorted(p for p, s in views.items()
                    if peer_timeout <= s < lost_for)
    if len(reach) >= need:
        return Verdict(ALIVE, f"{len(reach)} of {peer_count} peers still "
                              f"reach it ({', '.join(reach)}): the fault is "
                              "between the controller and the host")
    if last_granted is None:
        return Verdict(UNKNOWN, "no lease granted to it is known")
    left = last_granted + lease_time + probe_interval + margin - now
    if left > 0:
        return Verdict(WAIT, f"lease, one probe round and margin not over "
                             f"for {left:.1f} s")
    if len(lost) >= need:
        return Verdict(FENCED, f"lease over {-left:.1f} s ago and {len(lost)} "
                               f"of {peer_count} peers lost it for "
                               f"{lost_for:g} s or more "
                               f"({', '.join(lost)})")
    if len(views) < need:
        return Verdict(UNKNOWN, f"only {len(views)} of {peer_count} peers "
                                f"give a view; {need} needed")
    if len(lost) + len(losing) >= need:
        return Verdict(WAIT, f"{len(lost) + len(losing)} of {peer_count} "
                             "peers lost it, not yet for "
                             f"{lost_for:g} s")
    return Verdict(UNKNOWN, f"peers split: {len(reach)} reach it, "
                            f"{len(lost) + len(losing)} lost it, of "
                            f"{peer_count}; no majority either way")
