"""Relocate an HA guest that kept crashing on its host (task kind
"ha_relocate", instance action "ha-relocate"): a cold migration to
another host, confirmed at once, the guest started there.  Started by
agent.controller.recovery once [ha] max_restart restarts within
restart_window did not keep it up; counted against max_relocate.

0.    detect: an event saying what was seen (ops.ha_restart.note)
1-12. the cold migration's steps (agent.controller.ops.cold_migrate:
      record, schedule, image, power_off, rename, ..., start, verify),
      their undos as there: a failure leaves the guest on its host
13-16. the confirm's steps (agent.controller.ops.resize_confirm: find,
      source -- the point of no return --, discard, confirmed)

Nobody is asked to confirm: the operator did not ask for this move, and
the guest's old copy on a host where it kept crashing is no fallback.
Resumed forward, as both operations are.
"""
from agent.controller.ops import cold_migrate, ha_restart, resize_confirm
from agent.controller.tasks.workflow import Step, Workflow

KIND = "ha_relocate"


def workflow(params):
    return Workflow(KIND, [Step("detect", ha_restart.note)]
                    + cold_migrate.workflow(params).steps
                    + resize_confirm.workflow(params).steps,
                    resume="forward", on_failed=cold_migrate.failed)
