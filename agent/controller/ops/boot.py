"""Boot an instance.

1. schedule: pick a host and claim its capacity   undo: release the claim
2. image:    copy the image into the host's cache  (a cache: kept)
3. disk:     instance directory, qcow2 overlay     undo: remove the directory
4. define:   the domain from the templates         undo: undefine
5. start:    power it on                           undo: destroy
6. active:   ACTIVE, running

Resumed forward after a controller restart: every step is idempotent.
A failure leaves the instance in ERROR with the reason, holding nothing.
"""
from agent.controller import images, placement, states
from agent.controller.ops import common
from agent.controller.tasks.workflow import Step, Workflow


def schedule(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    ctx.progress("scheduling")
    host = placement.place(
        store, inst["flavor"], inst["uuid"], inst["uuid"],
        force_host=ctx.params.get("host"),
        availability_zone=inst["requested_availability_zone"])
    common.update(ctx, host=host, task_state=states.SPAWNING,
                  availability_zone=store.host_availability_zone(host))
    return {"host": host}


def unschedule(ctx):
    ctx.services.store.release(ctx.params["uuid"])
    common.update(ctx, host=None)


def fetch_image(ctx):
    store = ctx.services.store
    image = store.get_image(common.instance(ctx)["image_uuid"])
    path = images.ensure_on_host(ctx.services.hosts, ctx["host"], image,
                                 ctx.progress)
    return {"image_path": path, "image_format": image["format"]}


def create_disk(ctx):
    ctx.progress(f"creating the disk on {ctx['host']}")
    spec = common.guest_spec(common.instance(ctx))
    common.agent_call(ctx, ctx["host"], "instance.prepare",
                      uuid=spec["uuid"], storage=spec["storage"],
                      image_path=ctx["image_path"],
                      image_format=ctx["image_format"],
                      disk_gb=spec["disk_gb"])


def remove_disk(ctx):
    inst = common.instance(ctx)
    common.agent_call(ctx, ctx["host"], "instance.cleanup",
                      uuid=inst["uuid"], storage=inst["storage"])


def define(ctx):
    common.agent_call(ctx, ctx["host"], "instance.define",
                      spec=common.guest_spec(common.instance(ctx)))


def undefine(ctx):
    common.instance_call(ctx, ctx["host"], "instance.undefine")


def start(ctx):
    ctx.progress(f"starting on {ctx['host']}")
    common.instance_call(ctx, ctx["host"], "instance.start")


def destroy(ctx):
    common.instance_call(ctx, ctx["host"], "instance.destroy")


def mark_active(ctx):
    from agent.controller.db.models import utcnow
    common.update(ctx, vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, launched_at=utcnow(),
                  error=None)
    ctx.progress("ACTIVE")


def workflow(params):
    return Workflow("boot", [
        Step("schedule", schedule, unschedule),
        Step("image", fetch_image),
        Step("disk", create_disk, remove_disk),
        Step("define", define, undefine),
        Step("start", start, destroy),
        Step("active", mark_active),
    ], resume="forward", on_failed=common.set_error)
