"""Unrescue an instance: boot it from its own disk again.

1. record:   the host
2. destroy:  the rescue system off at once (Nova)     undo: boot it again
3. define:   the original definition again (commit)
4. start:    the instance boots from its own disk, as changed in rescue
5. cleanup:  remove the rescue overlay (disk.rescue)
6. active:   ACTIVE

Before the commit a failure boots the rescue system again (RESCUE, the
reason shown).  After it the task only goes forward: a failure leaves
ERROR with the reason (reboot --hard or start it), never the rescue domain
back over a disk the instance may already have used.  Resumed forward
after a controller restart: every step is idempotent.  The instance's own
disk is never touched: only the overlay goes.
"""
from agent.controller import states
from agent.controller.ops import common, rescue, steps
from agent.controller.tasks.workflow import Step, Workflow

KIND = "unrescue"


def record(ctx):
    return {"host": common.instance(ctx)["host"]}


def destroy(ctx):
    ctx.progress("stopping the rescue system")
    common.instance_call(ctx, ctx["host"], "instance.destroy")
    common.update(ctx, power_state=states.SHUTDOWN)


def boot_rescue_again(ctx):
    steps.leave_if_unreachable(ctx, ctx["host"], "instance.start", None,
                               uuid=ctx.params["uuid"])
    common.update(ctx, power_state=states.RUNNING)


def boot_own_disk(ctx):
    ctx.progress(f"booting from its own disk on {ctx['host']}")
    common.instance_call(ctx, ctx["host"], "instance.start")


def mark_active(ctx):
    common.update(ctx, vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, error=None)
    ctx.progress("ACTIVE")


def failed(ctx, err):
    common.fail_past_commit(ctx, err)


def workflow(params):
    return Workflow(KIND, [
        Step("record", record),
        Step("destroy", destroy, boot_rescue_again),
        Step("define", rescue.define_original, commit=True),
        Step("start", boot_own_disk),
        Step("cleanup", rescue.remove_rescue_disk),
        Step("active", mark_active),
    ], resume="forward", on_failed=failed)
