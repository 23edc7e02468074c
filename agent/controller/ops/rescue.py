"""Rescue an instance: boot it from a rescue image, its own disk attached.

Nova's rescue with stable device rescue, on the instance's own host.  The
rescue domain is the instance's domain (same UUID, name, MAC, address)
redefined: the rescue overlay boots (vda), the instance's own disks follow
(vdb...) and are not booted; the original definition stays in the
instance directory's libvirt.xml and is defined again by unrescue
(ops/unrescue.py).  One domain at all times: the guest and its rescue
system never run at once, and never on two hosts.

0. (precheck) the rescue image: the one asked for, else [compute]
   rescue_image, else the instance's own (refused up front if unknown)
1. record:  the host, and whether the guest ran (to put it back)
2. image:   the rescue image into the host's cache       (a cache: kept)
3. disk:    a fresh overlay of it, disk.rescue           undo: remove it
4. shutdown: graceful, then destroy                      undo: start it
                                                          again if it ran
5. define:  the domain redefined as the rescue domain    undo: the original
                                                          definition again
6. start:   boot the rescue system (commit)              undo: destroy
7. rescued: RESCUE

A rescue system that fails to start puts the original back as it was
(defined, its own disk, running if it ran).  Resumed forward after a
controller restart: every step is idempotent.  Nothing here deletes the
instance's disk: only the rescue overlay, a copy-on-write of an image.
"""
from agent.common.errors import Conflict
from agent.conf import CONF
from agent.controller import states
from agent.controller.ops import common, steps
from agent.controller.tasks.workflow import Step, Workflow

KIND = "rescue"
RESCUABLE = frozenset({states.ACTIVE, states.STOPPED, states.ERROR})


def precheck(services, inst, params):
    """The instance must be on a host that is up; the rescue image must
    exist (NotFound, exit 2).  Puts the image's uuid in the params."""
    store = services.store
    if not inst["host"]:
        raise Conflict(f"instance {inst['name']} is on no host; it cannot "
                       "be rescued")
    host = store.get_host(inst["host"])
    if host["state"] != "up":
        raise Conflict(f"instance {inst['name']}: its host {host['name']} "
                       f"is {host['state']}; it cannot be rescued now")
    wanted = params.get("image") or CONF.compute.rescue_image or \
        inst["image_uuid"]
    return dict(params, image=store.get_image(wanted)["uuid"])


def last_rescue(store, uuid):
    """The instance's last finished rescue task (its image in params,
    its end as updated_at), or None."""
    done = [t for t in store.list_tasks(instance_uuid=uuid)
            if t["kind"] == KIND and t["state"] == "done"]
    return done[-1] if done else None


# -- steps -------------------------------------------------------------------

def record(ctx):
    inst = common.instance(ctx)
    return {"host": inst["host"],
            "was_running": inst["power_state"] == states.RUNNING}


def rescue_disk(ctx):
    ctx.progress(f"creating the rescue disk on {ctx['host']}")
    inst = common.instance(ctx)
    common.instance_call(ctx, ctx["host"], "instance.rescue_disk",
                         storage=inst["storage"],
                         image_path=ctx["image_path"],
                         image_format=ctx["image_format"])


def remove_rescue_disk(ctx):
    steps.leave_if_unreachable(ctx, ctx["host"], "instance.rescue_cleanup",
                               None, uuid=ctx.params["uuid"],
                               storage=common.instance(ctx)["storage"])


def shutdown(ctx):
    ctx.progress("shutting down")
    out = common.instance_call(ctx, ctx["host"], "instance.stop")
    common.update(ctx, power_state=states.SHUTDOWN)
    return {"shutdown": out["result"]}


def start_again(ctx):
    """Undo of the shutdown: the guest as it was, running if it ran."""
    if ctx["was_running"]:
        steps.leave_if_unreachable(ctx, ctx["host"], "instance.start", None,
                                   uuid=ctx.params["uuid"])
        common.update(ctx, power_state=states.RUNNING)


def define_rescue(ctx):
    common.agent_call(ctx, ctx["host"], "instance.rescue_define",
                      spec=common.guest_spec(common.instance(ctx)))


def define_original(ctx):
    common.agent_call(ctx, ctx["host"], "instance.define",
                      spec=common.guest_spec(common.instance(ctx)))


def boot_rescue(ctx):
    ctx.progress(f"booting the rescue system on {ctx['host']}")
    common.instance_call(ctx, ctx["host"], "instance.start")


def mark_rescued(ctx):
    common.update(ctx, vm_state=states.RESCUED, task_state=None,
                  power_state=states.RUNNING, error=None)
    ctx.progress("RESCUE")


def failed(ctx, err):
    """Every undo ran: the instance is as it was (its vm_state kept, the
    reason shown).  An undo that failed leaves it in ERROR."""
    undone = {s["name"]: s["state"] for s in
              ctx.services.store.steps_get(ctx.task_id)}
    with_undo = {s.name for s in workflow({}).steps if s.undo}
    if any(undone.get(n) in ("started", "done", "failed")
           for n in with_undo):
        common.set_error(ctx, err)
    else:
        common.reset_task_state(ctx, err)


def workflow(params):
    return Workflow(KIND, [
        Step("record", record),
        Step("image", steps.fetch_image("host", image_key="image")),
        Step("disk", rescue_disk, remove_rescue_disk),
        Step("shutdown", shutdown, start_again),
        Step("define", define_rescue, define_original),
        Step("start", boot_rescue, steps.destroy_on("host"), commit=True),
        Step("rescued", mark_rescued),
    ], resume="forward", on_failed=failed)
