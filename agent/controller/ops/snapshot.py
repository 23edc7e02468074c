"""Snapshot an instance into an image (``server image create``, Nova's
image-create), without stopping it.

1. record: the image in the store, status saving     undo: its record and
                                                     file removed
2. copy:   snapshot.create on the instance's host: a  undo: that file
           standalone compact qcow2 of the disk as    removed (a gone
           it is now (running: libvirt's backup job,  host: left in the
           no pause; stopped: qemu-img convert),      instance directory)
           beside the disk, or straight into the
           store when the hosts share it
3. store:  not shared: the file copied into the image store over SSH,
           hashed on the way, its size checked against the host's;
           shared: the host's file found in the store, whole; the image
           active with its size and sha256
4. clean:  not shared: the host's file removed (shared: nothing is on
           the host); the guest's disk chain ends as it began, and no
           temporary file is left
5. done:   the task cleared; the instance as it was (ACTIVE or SHUTOFF)

Where the file goes is decided once, in the first step, and kept in the
task: a resumed task does not change course with the configuration.

Resumed forward after a controller restart: every step finds what it
made before.  A failure leaves the instance as it was, with the reason,
and no image.  The instance's disk is only ever read: no promise is at
stake here (shelve, which deletes the disk, builds on these steps).
"""
import time

from agent.common.errors import Conflict, NotFound
from agent.controller import images
from agent.controller.db import validate
from agent.controller.ops import common, steps
from agent.controller.tasks.workflow import Step, Workflow


def precheck(services, inst, params):
    """The image's name: valid and free; the instance on a host."""
    name = params.get("image_name")
    validate.name(name, "image name")
    try:
        taken = services.store.get_image(name)
    except NotFound:
        taken = None
    if taken is not None:
        raise Conflict(f"image {name} already exists")
    if not inst["host"]:
        raise Conflict(f"instance {inst['name']} is on no host")
    return params


# -- steps (shelve uses them too) ------------------------------------------

def find_host(ctx):
    inst = common.instance(ctx)
    return {"host": inst["host"], "storage": inst["storage"],
            "store_dir": images.shared_store_dir()}


def _ours(ctx):
    """This task's image (saving), made before a restart; or None."""
    try:
        image = ctx.services.store.get_image(ctx.params["image_name"])
    except NotFound:
        return None
    if image["instance_uuid"] == ctx.params["uuid"] and \
            image["status"] == images.SAVING:
        return image
    return None


def record(ctx):
    image = _ours(ctx) or images.new_snapshot(
        ctx.services.store, ctx.params["image_name"], common.instance(ctx))
    return {"image_uuid": image["uuid"]}


def unrecord(ctx):
    image_uuid = ctx.get("image_uuid") or (_ours(ctx) or {}).get("uuid")
    if image_uuid:
        images.discard(ctx.services.store, image_uuid)


def copy(ctx):
    ctx.progress(f"copying the disk on {ctx['host']}")
    shared = ctx.get("store_dir")
    made = common.agent_call(ctx, ctx["host"], "snapshot.create",
                             uuid=ctx.params["uuid"], storage=ctx["storage"],
                             image_uuid=ctx["image_uuid"], dest_dir=shared,
                             checksum=bool(shared))
    ctx.progress(f"disk copied ({made['method'] or 'found'}, "
                 f"{made['size'] >> 20} MiB in {made['seconds'] or 0} s"
                 f"{' into the shared store' if shared else ''})")
    return {"made": made}


def remove_copy(ctx):
    steps.leave_if_unreachable(
        ctx, ctx["host"], "snapshot.remove", None, uuid=ctx.params["uuid"],
        storage=ctx["storage"], image_uuid=ctx["image_uuid"],
        dest_dir=ctx.get("store_dir"))


def store(ctx):
    started = time.monotonic()
    image = ctx.services.store.get_image(ctx["image_uuid"])
    if ctx.get("store_dir"):
        image = images.adopt_snapshot(ctx.services.store, ctx["host"],
                                      image, ctx["made"])
    else:
        ctx.progress("copying the snapshot into the image store")
        image = images.receive_snapshot(
            ctx.services.store, ctx.services.hosts, ctx["host"], image,
            ctx["made"])
    ctx.progress(f"image {image['name']} active, sha256 {image['checksum']}")
    return {"store_seconds": round(time.monotonic() - started, 3)}


def clean(ctx):
    if ctx.get("store_dir"):
        return      # the file is the image now, in the store: keep it
    common.agent_call(ctx, ctx["host"], "snapshot.remove",
                      uuid=ctx.params["uuid"], storage=ctx["storage"],
                      image_uuid=ctx["image_uuid"])


def done(ctx):
    common.update(ctx, task_state=None, error=None)
    made = ctx["made"]
    ctx.progress(f"done (disk copied: {made['method'] or 'found'}, "
                 f"{made['size'] >> 20} MiB in {made['seconds'] or 0} s; "
                 f"stored and checked in {ctx.get('store_seconds')} s)")


SNAPSHOT_STEPS = [
    Step("record", record, unrecord),
    Step("copy", copy, remove_copy),
    Step("store", store),
]


def workflow(params):
    return Workflow("snapshot", [
        Step("find", find_host),
        *SNAPSHOT_STEPS,
        Step("clean", clean),
        Step("done", done),
    ], resume="forward", on_failed=common.reset_task_state)
