"""Revert a cold migration or resize: back on the source, old flavor.

1. find:      the instance's finished migration -> "reverting"
2. destroy:   the guest on the destination
3. undefine:  its domain there
4. cleanup:   its copy there (<uuid>; on shared storage the copy, never
              the <uuid>_resize original)
5. restore:   <uuid>_resize -> <uuid> on the source
6. define:    the domain with the old flavor on the source
7. start:     on the source, unless it was SHUTOFF before the move
8. reverted:  the destination claim (the migration's) released; host,
              flavor back; migration "reverted"

Resumed forward; step 2 is the point of no return.  A failure before it
changes nothing (VERIFY_RESIZE again, with the reason); after it the
migration stays "reverting" and the revert is run again (periodic, or
the operator) until it is done.
"""
from agent.controller import states
from agent.common.errors import one_line
from agent.controller.ops import common, steps
from agent.controller.ops.cold_migrate import final_vm_state, power_for
from agent.controller.ops.resize_confirm import find_migration
from agent.controller.ops.steps import add_event, update_migration
from agent.controller.tasks.workflow import Step, Workflow


def precheck(services, inst, params):
    """Refused up front when nothing waits for a revert (one that failed
    past its point of no return may run again)."""
    find_migration(services.store, inst["uuid"],
                   (states.MIG_FINISHED, states.MIG_REVERTING))
    return params


def find(ctx):
    mig = find_migration(ctx.services.store, ctx.params["uuid"],
                         (states.MIG_FINISHED, states.MIG_REVERTING))
    update_migration(ctx, mig["uuid"], status=states.MIG_REVERTING)
    return {"migration": mig["uuid"], "source": mig["source_host"],
            "dest": mig["dest_host"], "old_flavor": mig["old_flavor"],
            "old_vm_state": (mig.get("progress") or {}).get("old_vm_state")}


def _dest(ctx, method, **params):
    common.instance_call(ctx, ctx["dest"], method, **params)


def destroy(ctx):
    ctx.progress(f"powering off on {ctx['dest']}")
    _dest(ctx, "instance.destroy")


def undefine(ctx):
    _dest(ctx, "instance.undefine")


def cleanup(ctx):
    _dest(ctx, "instance.cleanup", storage=common.instance(ctx)["storage"])


def restore(ctx):
    common.instance_call(ctx, ctx["source"], "move.restore",
                         storage=common.instance(ctx)["storage"])


def reverted(ctx):
    store = ctx.services.store
    store.release(ctx["migration"])
    old = ctx["old_flavor"]
    vm_state = final_vm_state(ctx["old_vm_state"])
    common.update(ctx, host=ctx["source"], flavor=old, flavor_id=old["id"],
                  vm_state=vm_state, task_state=None,
                  power_state=power_for(vm_state), old_flavor=None,
                  new_flavor=None, error=None,
                  availability_zone=store.host_availability_zone(
                      ctx["source"]))
    update_migration(ctx, ctx["migration"], status=states.MIG_REVERTED)
    ctx.progress(states.status(vm_state))


def failed(ctx, err):
    """Before the point of no return nothing changed: the migration is
    "finished" again (VERIFY_RESIZE, confirm or revert again).  After
    it the revert can only go forward: the migration stays "reverting"
    (it still owns the files and claims on both hosts), the instance
    stays VERIFY_RESIZE with the reason, and the revert is run again by
    agent.controller.periodic once both hosts are up (every step can run
    twice), or by the operator."""
    mig = ctx.get("migration")
    if not ctx.committed:
        if mig:
            update_migration(ctx, mig, status=states.MIG_FINISHED)
        common.reset_task_state(ctx, err)
        return
    common.update(ctx, task_state=None, power_state=states.SHUTDOWN,
                  error=one_line(err))
    add_event(ctx, "resize-revert_error",
              f"{err}. The revert goes on when {ctx.get('source')} and "
              f"{ctx.get('dest')} answer (or run 'drover server "
              "resize-revert' again); the original files are on "
              f"{ctx.get('source')}.")


def workflow(params):
    return Workflow("resize_revert", [
        Step("find", find),
        # The destination's copy is stopped: from here the revert only
        # goes forward, back onto the source.
        Step("destroy", destroy, commit=True),
        Step("undefine", undefine),
        Step("cleanup", cleanup),
        Step("restore", restore),
        Step("define", steps.define_on("source", "old_flavor")),
        Step("start", steps.start_on("source", keep_stopped=True)),
        Step("reverted", reverted),
    ], resume="forward", on_failed=failed)
