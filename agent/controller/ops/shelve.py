"""Shelve an instance (Nova's shelve, offloaded at once): keep it as an
image and free its host.

1. power_off: graceful shutdown (a clean disk),   undo: started again if
              then destroy                        it was running
2. record, copy, store: ops/snapshot's steps: the
              disk as a checked image in the store
3. verify:    the stored file read again: active, its size and sha256
              as recorded; else the task fails and undoes
4. undefine:  the domain removed  -- point of no return (commit)
5. cleanup:   the instance directory removed (the disk, and the
              snapshot file with it)
6. offloaded: claims released, no host, SHELVED_OFFLOADED, the image
              recorded as the instance's (its id, name, flavor, MAC and
              address are kept for unshelve)

The promise at stake: the disk holding the only copy of the guest's data
must not go first.  It is deleted (5) only after the image holding the
same data was checked in the store (3), and after the point of no return
(4): a failure before it undoes everything and leaves the instance where
it was, its disk untouched; past it the task only goes forward (resumed
forward after a restart; a host gone at 5 gets a clean-up recorded for
its return, since the image holds the data).
"""
from agent.common.errors import DroverError
from agent.controller import images, states
from agent.controller.ops import common, snapshot
from agent.controller.tasks.workflow import Step, Workflow
from agent.transport.errors import HostUnreachable


def shelved_name(inst):
    """The image's name, as Nova's: ``<name>-shelved``."""
    return f"{inst['name']}-shelved"


def precheck(services, inst, params):
    return snapshot.precheck(services, inst,
                             dict(params, image_name=shelved_name(inst)))


def power_off(ctx):
    ctx.progress("shutting down")
    was = common.instance(ctx)["vm_state"]
    common.instance_call(ctx, ctx["host"], "instance.stop")
    return {"was_running": was == states.ACTIVE}


def power_on_again(ctx):
    if ctx.get("was_running"):
        common.instance_call(ctx, ctx["host"], "instance.start")


def verify(ctx):
    image = ctx.services.store.get_image(ctx["image_uuid"])
    if not images.verified(image):
        raise DroverError(f"image {image['name']} does not match its "
                          "sha256 in the store: the disk is kept")
    ctx.progress(f"image {image['name']} verified")


def undefine(ctx):
    common.instance_call(ctx, ctx["host"], "instance.undefine")


def cleanup(ctx):
    try:
        common.instance_call(ctx, ctx["host"], "instance.cleanup",
                             storage=ctx["storage"])
    except HostUnreachable as err:
        ctx.services.store.record_cleanup(
            ctx["host"], ctx.params["uuid"], ctx["storage"], ("files",),
            reason=f"shelved while unreachable: {err}")


def offloaded(ctx):
    ctx.services.store.release(ctx.params["uuid"])
    common.update(ctx, vm_state=states.SHELVED_OFFLOADED, task_state=None,
                  host=None, power_state=states.NOSTATE, error=None,
                  shelved_image_uuid=ctx["image_uuid"])
    ctx.progress("SHELVED_OFFLOADED")


def on_failed(ctx, err):
    (common.set_error if ctx.committed else common.reset_task_state)(
        ctx, err)


def workflow(params):
    return Workflow("shelve", [
        Step("find", snapshot.find_host),
        Step("power_off", power_off, power_on_again),
        *snapshot.SNAPSHOT_STEPS,
        Step("verify", verify),
        Step("undefine", undefine, commit=True),
        Step("cleanup", cleanup),
        Step("offloaded", offloaded),
    ], resume="forward", on_failed=on_failed)

