"""Restart an HA guest that crashed or stopped without drover asking, on
its own host (task kind "ha_restart", instance action "ha-restart").
Started by agent.controller.recovery when the power-state sync sees an
ACTIVE HA instance powered off or crashed; counted against [ha]
max_restart within restart_window.

0. detect:  an event saying what was seen (``server event list``)
1. start:   power it on where it is (agent instance.start, idempotent)
2. active:  ACTIVE, running

A failure keeps vm_state ACTIVE, clears the task and keeps the reason:
the next poll sees it still off and the recovery decides again (the
failed restart counted), so it is relocated or left in ERROR in the end.
"""
from agent.controller.ops import power, steps
from agent.controller.ops.common import reset_task_state
from agent.controller.tasks.workflow import Step, Workflow

KIND = "ha_restart"


def note(ctx):
    """The reason the recovery gave, as an event of this action."""
    kind = str(ctx.params.get("action", "ha")).replace("-", "_")
    reason = ctx.params.get("reason") or "found down"
    steps.add_event(ctx, f"{kind}_reason", reason, "Success")
    if ctx.params.get("action_id") is not None:
        ctx.services.store.set_action_message(ctx.params["action_id"],
                                              reason)


def workflow(params):
    return Workflow(KIND, [Step("detect", note),
                           Step("start", power.power_on),
                           Step("active", power.mark_active)],
                    on_failed=reset_task_state)
