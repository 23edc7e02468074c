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

Resumed forward.  A failure leaves the instance in ERROR with the reason
(its original files stay in <uuid>_resize or <uuid> on the source).
"""
from agent.controller import states
from agent.controller.ops import common
from agent.controller.ops.cold_migrate import (add_event, final_vm_state,
                                               power_for, update_migration)
from agent.controller.ops.resize_confirm import find_migration
from agent.controller.tasks.workflow import Step, Workflow


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


def define(ctx):
    common.agent_call(ctx, ctx["source"], "instance.define",
                      spec=common.guest_spec(common.instance(ctx),
                                             ctx["old_flavor"]))


def start(ctx):
    if ctx["old_vm_state"] == states.STOPPED:
        return
    ctx.progress(f"starting on {ctx['source']}")
    common.instance_call(ctx, ctx["source"], "instance.start")


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
    if ctx.get("migration"):
        update_migration(ctx, ctx["migration"], status=states.MIG_ERROR,
                         error=str(err).splitlines()[0][:500])
    common.set_error(ctx, err)
    add_event(ctx, "resize-revert_error",
              f"{err}. The original files are on {ctx.get('source')} in "
              "<uuid>_resize (or <uuid> if restored): fix the cause, rename "
              "<uuid>_resize back to <uuid> if needed, then run 'drover "
              "server reboot --hard'.")


def workflow(params):
    return Workflow("resize_revert", [
        Step("find", find),
        Step("destroy", destroy),
        Step("undefine", undefine),
        Step("cleanup", cleanup),
        Step("restore", restore),
        Step("define", define),
        Step("start", start),
        Step("reverted", reverted),
    ], resume="forward", on_failed=failed)
