"""Unshelve an instance: boot it again from its shelved image, through
the scheduler, with the same id, name, flavor, MAC and address.

1. schedule: a host (``--host`` forces one, still     undo: claim
             filtered) and its claim                  released
2. image:    the shelved image into that host's cache
3. disk:     the instance directory with a standalone undo: the directory
             copy of the image (not an overlay on it: removed
             the image is deleted at 7)
4. define:   the domain                               undo: undefined
5. start:    power it on                              undo: destroyed
6. active:   ACTIVE, running -- point of no return (commit)
7. discard:  the shelved image removed from the store

A failure before 6 undoes in reverse and leaves the instance
SHELVED_OFFLOADED, its image untouched, with the reason.  The image is
removed only once the instance runs from its own copy of the data (the
promise: no last copy deleted).  Resumed forward after a restart.
"""
from agent.controller import images, states
from agent.controller.db.models import utcnow
from agent.controller.ops import boot, common, steps
from agent.controller.tasks.workflow import Step, Workflow


def precheck(services, inst, params):
    if params.get("host") is not None:
        services.store.get_host(params["host"])
    if inst.get("shelved_image_uuid"):      # else the rule refuses it
        services.store.get_image(inst["shelved_image_uuid"])
    return params


def create_disk(ctx):
    # A copy standing alone, so the snapshot image can go once it runs.
    boot.create_disk(ctx, flatten=True)


def mark_active(ctx):
    inst = common.instance(ctx)
    common.update(ctx, vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, launched_at=utcnow(),
                  shelved_image_uuid=None, error=None)
    ctx.progress("ACTIVE")
    return {"shelved_image": inst["shelved_image_uuid"]}


def discard(ctx):
    images.discard(ctx.services.store, ctx["shelved_image"])


def on_failed(ctx, err):
    if ctx.committed:
        common.reset_task_state(ctx, err)
        return
    common.update(ctx, vm_state=states.SHELVED_OFFLOADED, task_state=None,
                  host=None, error=str(err).splitlines()[0][:500])


def workflow(params):
    return Workflow("unshelve", [
        Step("schedule", boot.schedule, boot.unschedule),
        Step("image", steps.fetch_image("host", "shelved_image_uuid")),
        Step("disk", create_disk, boot.remove_disk),
        Step("define", steps.define_on("host"), steps.undefine_on("host")),
        Step("start", steps.start_on("host"), steps.destroy_on("host")),
        Step("active", mark_active, commit=True),
        Step("discard", discard),
    ], resume="forward", on_failed=on_failed)
