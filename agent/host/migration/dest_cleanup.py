"""What the destination's clean-up may do after a failed live migration.

Given the destination's domain (its state and libvirt's reason for it),
the source's domain state and the instance's storage, ``decide`` says
whether the destination's domain may be destroyed or undefined and its
instance directory removed, or that the clean-up must refuse.  Argued
from the two promises:

- A guest never runs on two hosts, and is never lost: the destination's
  domain is destroyed only when it is libvirt's *incoming* copy (paused
  for the migration, still starting up, or with no state yet) and the
  source still holds the guest (its domain active there).  A destination
  domain that runs (resumed after the switch-over, in post-copy, or
  paused for any other reason) is where the guest lives now, or may be:
  never touched, the clean-up refuses loudly.
- No disk holding the only copy is deleted: the instance directory goes
  only on local storage (on shared storage it is the source's too) and
  only while the source holds the guest, whose own disk is then the
  original.

libvirt removes its incoming domain itself a few seconds after a failed
migration; the agent gives it that time (``Plan.destroy``) before it
destroys the domain.
"""
import dataclasses

# Destination states (domains.state) of libvirt's incoming copy.
INCOMING = {("paused", "migration"), ("paused", "starting-up")}
NOT_RUNNING = {"shutoff", "crashed"}
# Source states in which the source holds the guest.
HOLDING = {"running", "paused", "blocked"}


@dataclasses.dataclass(frozen=True)
class Plan:
    destroy: bool = False       # libvirt's incoming copy (then undefine)
    undefine: bool = False      # a definition that does not run
    remove_dir: bool = False    # the destination's instance directory
    refuse: str | None = None   # why nothing may be done


def decide(dest, source_state, storage):
    """The Plan for the destination's clean-up.

    ``dest``: (state, reason) of the destination's domain
    (agent.hypervisor.domains.state), or None if it has none;
    ``source_state``: the source's domain state ("running", "paused",
    ..., None if it has none or cannot be read); ``storage``: "local" or
    "shared".
    """
    holds = source_state in HOLDING
    if dest is not None:
        state, reason = dest
        incoming = (state, reason) in INCOMING or state == "nostate"
        if not incoming and state not in NOT_RUNNING:
            return Plan(refuse=f"the instance is {state} ({reason}) on "
                        "this host: the migration may have completed; "
                        "not cleaning it up")
        if not holds:
            return Plan(refuse="the source does not hold the guest "
                        f"({source_state or 'no domain'}): keeping its "
                        f"{state} domain on this host")
    elif not holds and storage == "local":
        return Plan(refuse="the source does not hold the guest "
                    f"({source_state or 'no domain'}): keeping its "
                    "instance directory on this host")
    return Plan(destroy=dest is not None and dest[0] not in NOT_RUNNING,
                undefine=dest is not None,
                remove_dir=storage == "local")
