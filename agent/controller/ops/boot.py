"""Boot an instance.

1. schedule: pick a host and claim its capacity   undo: release the claim
2. image:    copy the image into the host's cache  (a cache: kept)
3. disk:     instance directory, qcow2 overlay     undo: remove the directory
4. define:   the domain from the templates         undo: undefine
5. start:    power it on                           undo: destroy
6. active:   ACTIVE, running

Resumed forward after a controller restart: every step is idempotent.
A failure leaves the instance in ERROR with the reason, holding nothing.
An undo whose host is gone leaves the disk and the definition there,
recorded for the host's return; a guest that may run is never left: its
destroy is skipped only on a host known to be off.
"""
from agent.common.errors import InvalidInput
from agent.controller import placement, states
from agent.controller.db.models import utcnow
from agent.controller.ops import common, steps
from agent.controller.tasks.workflow import Step, Workflow


def check_request(store, flavor, image, availability_zone=None, host=None,
                  group=None):
    """Refuse up front (NotFound / InvalidInput, exit 2) what names
    nothing: the flavor, the image, the availability zone, the host, the
    server group."""
    store.get_flavor(flavor)
    found = store.get_image(image)
    if found.get("status", "active") != "active":
        raise InvalidInput(f"image {found['name']} is {found['status']}, "
                           "not active")
    if host is not None:
        store.get_host(host)
    if group is not None:
        store.get_group(group)
    if availability_zone is not None:
        zones = store.availability_zones()
        if availability_zone not in zones:
            raise InvalidInput(
                f"availability zone {availability_zone} does not exist "
                f"(zones: {', '.join(sorted(zones))})")


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


def create_disk(ctx, flatten=False):
    """The instance's disk from the image in the host's cache: an
    overlay on it, or (``flatten``) a copy standing alone."""
    ctx.progress(f"creating the disk on {ctx['host']}")
    spec = common.guest_spec(common.instance(ctx))
    common.agent_call(ctx, ctx["host"], "instance.prepare",
                      uuid=spec["uuid"], storage=spec["storage"],
                      image_path=ctx["image_path"],
                      image_format=ctx["image_format"],
                      disk_gb=spec["disk_gb"], flatten=flatten)


def remove_disk(ctx):
    inst = common.instance(ctx)
    steps.leave_if_unreachable(
        ctx, ctx["host"], "instance.cleanup", steps.leftover(ctx, "files"),
        uuid=inst["uuid"], storage=inst["storage"])


def mark_active(ctx):
    common.update(ctx, vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, launched_at=utcnow(),
                  error=None)
    ctx.progress("ACTIVE")


def workflow(params):
    return Workflow("boot", [
        Step("schedule", schedule, unschedule),
        Step("image", steps.fetch_image("host")),
        Step("disk", create_disk, remove_disk),
        Step("define", steps.define_on("host"), steps.undefine_on("host")),
        Step("start", steps.start_on("host"), steps.destroy_on("host")),
        Step("active", mark_active),
    ], resume="forward", on_failed=common.set_error)
