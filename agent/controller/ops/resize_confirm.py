"""Confirm a cold migration or resize (VERIFY_RESIZE -> ACTIVE/SHUTOFF).

1. find:      the instance's finished migration -> "confirming"
2. source:    destroy and undefine the domain on the source (not when the
              resize stayed on the same host: that domain is the new one)
3. discard:   remove <uuid>_resize on the source
4. confirmed: the source's allocation (the instance's) released, the
              destination's (the migration's) handed to the instance;
              old/new flavor cleared; migration "confirmed"

Resumed forward; step 2 is the point of no return (a cancel is refused
after it).  A failure (e.g. the source is down) leaves the instance
in VERIFY_RESIZE with the reason, the migration "finished": confirm again.
"""
from agent.common.errors import Conflict
from agent.controller import states
from agent.controller.ops import common
from agent.controller.ops.cold_migrate import final_vm_state
from agent.controller.ops.steps import update_migration
from agent.controller.tasks.workflow import Step, Workflow

MOVE_TYPES = ("migration", "resize")


def find_migration(store, instance_uuid, statuses):
    """The instance's newest cold move in one of ``statuses``."""
    for mig in store.list_migrations(instance_uuid=instance_uuid):
        if mig["type"] in MOVE_TYPES:
            if mig["status"] in statuses:
                return mig
            break
    raise Conflict(f"instance {instance_uuid} has no migration waiting for "
                   "confirm or revert")


def confirm_claims(store, instance_uuid, mig):
    """Source allocation (the instance's) released; the destination's
    (the migration's) becomes the instance's."""
    store.release(instance_uuid, host=mig["source_host"])
    store.move_allocations(mig["uuid"], instance_uuid, host=mig["dest_host"])


def precheck(services, inst, params):
    """Refused up front when nothing waits for confirmation."""
    find_migration(services.store, inst["uuid"], (states.MIG_FINISHED,))
    return params


def find(ctx):
    mig = find_migration(ctx.services.store, ctx.params["uuid"],
                         (states.MIG_FINISHED, states.MIG_CONFIRMING))
    update_migration(ctx, mig["uuid"], status=states.MIG_CONFIRMING)
    return {"migration": mig["uuid"], "source": mig["source_host"],
            "dest": mig["dest_host"],
            "old_vm_state": (mig.get("progress") or {}).get("old_vm_state")}


def clear_source(ctx):
    if ctx["source"] == ctx["dest"]:
        return
    ctx.progress(f"removing the domain from {ctx['source']}")
    for method in ("instance.destroy", "instance.undefine"):
        common.instance_call(ctx, ctx["source"], method)


def discard(ctx):
    common.instance_call(ctx, ctx["source"], "move.discard",
                         storage=common.instance(ctx)["storage"])


def confirmed(ctx):
    store = ctx.services.store
    confirm_claims(store, ctx.params["uuid"],
                   store.get_migration(ctx["migration"]))
    vm_state = final_vm_state(ctx["old_vm_state"])
    common.update(ctx, vm_state=vm_state, task_state=None, old_flavor=None,
                  new_flavor=None, error=None)
    update_migration(ctx, ctx["migration"], status=states.MIG_CONFIRMED)
    ctx.progress(states.status(vm_state))


def failed(ctx, err):
    if ctx.get("migration"):
        update_migration(ctx, ctx["migration"], status=states.MIG_FINISHED)
    common.reset_task_state(ctx, err)


def workflow(params):
    return Workflow("resize_confirm", [
        Step("find", find),
        # The source's copy goes: from here the confirm only goes forward.
        Step("source", clear_source, commit=True),
        Step("discard", discard),
        Step("confirmed", confirmed),
    ], resume="forward", on_failed=failed)
