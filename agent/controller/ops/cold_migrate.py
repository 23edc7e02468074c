"""Cold migration and resize (task kinds "cold_migrate" and "resize").

 1. record:    migration record (type migration|resize), old and new
               flavor on the instance          (on failure: record "error")
 2. schedule:  a destination (not the source, unless a resize may stay:
               [compute] allow_resize_to_same_host) and its claim, held by
               the migration's uuid             undo: release that claim
 3. image:     the image in the destination's cache (a cache: kept)
 4. power_off: graceful shutdown, destroy after [libvirt] shutdown_timeout
                                               undo: start on the source
                                                     (if it was running)
 5. rename:    <uuid> -> <uuid>_resize on the source
                                               undo: rename back, define
                                                     with the old flavor
 6. convert:   qcow2 -> raw if [compute] convert_to_raw_on_migrate
               (same data: nothing to undo)
 7. storage:   shared-storage check (a probe file written on the source,
               looked for on the destination)
 8. copy:      shared: copy <uuid>_resize into a new <uuid> on the same
               file system (``cp --sparse=always``; the original stays for
               revert, as Nova keeps it until confirm); not shared: send
               the files over SSH (sparse, checksummed), progress in the
               migration record           undo: remove the copy on the
               destination (best effort: a copy left on an unreachable
               host is recorded and removed later by agent.controller
               .periodic)
 9. disk:      rebase the overlay onto the destination's cached image,
               grow it to the new flavor's disk
10. define:    the domain with the new flavor on the destination
                                               undo: undefine there
11. start:     on the destination, if it was running (a SHUTOFF instance
               stays off, as in Nova)           undo: destroy there
12. verify:    VERIFY_RESIZE (vm_state resized) on the destination,
               migration "finished"; confirm or revert next.

Resumed forward after a controller restart (every step is idempotent; the
copy runs in the source agent and is found again by the migration uuid).
A failure undoes the steps before it: the instance ends as it was on the
source with the reason in ``error``; if an undo fails it ends in ERROR with
its data kept in <uuid>_resize on the source and an event saying so.
"""
import logging
import time

from agent.common.errors import (DroverError, HostGone, InvalidInput,
                                 one_line)
from agent.conf import CONF
from agent.controller import placement, states
from agent.controller.db.instances import flavor_snapshot
from agent.controller.ops import common, steps
from agent.controller.ops.steps import add_event, update_migration
from agent.controller.tasks.workflow import Step, Workflow

LOG = logging.getLogger(__name__)
POLL = 0.5


# -- pure decisions -----------------------------------------------------------

def migration_type(params):
    """A task with a new flavor is a resize."""
    return "resize" if params.get("flavor") else "migration"


def check_flavors(old, new):
    """Disks only grow (qemu-img resize cannot shrink a file system)."""
    if new["disk_gb"] < old["disk_gb"]:
        raise InvalidInput(f"cannot resize to {new['name']}: the disk would "
                           f"shrink from {old['disk_gb']} to "
                           f"{new['disk_gb']} GiB; disks only grow")


def ignore_hosts(resize, source, allow_same_host):
    """Hosts the scheduler must not pick for this move."""
    if resize and allow_same_host:
        return ()
    return (source,)


def copy_path(probe_seen):
    """"shared": the destination sees the source's storage; "copy"."""
    return "shared" if probe_seen else "copy"


def undo_complete(step_records):
    """True if every step that ran was undone (the engine stops undoing
    at the first undo that fails), or skipped leaving only what the host
    clean-up table removes later (a copy on an unreachable destination)."""
    return all(s["state"] in ("undone", "pending", None) or (
        s["state"] == "skipped" and (s.get("data") or {}).get("leftover"))
        for s in step_records)


def rollback_possible(storage, source, dest):
    """A rollback the controller can finish later, from the migration
    record alone: local storage (a copy on shared storage is in the same
    file system as the original: removing it after a restore would remove
    the instance's disk) and two hosts."""
    return storage == "local" and dest is not None and source != dest


def final_vm_state(old_vm_state):
    """What a confirmed or reverted move ends as."""
    return states.STOPPED if old_vm_state == states.STOPPED \
        else states.ACTIVE


def power_for(vm_state):
    return states.SHUTDOWN if vm_state == states.STOPPED else states.RUNNING


def progress_of(status):
    """Migration-record progress from a copy job's status."""
    return {"percent": status.get("percent", 0.0),
            "bytes_done": status.get("bytes_done", 0),
            "bytes_total": status.get("bytes_total", 0)}


# -- up-front checks (agent.controller.admission) -------------------------

def precheck_migrate(services, inst, params):
    if params.get("host") is not None:
        services.store.get_host(params["host"])
    return params


def precheck_resize(services, inst, params):
    new = services.store.get_flavor(params["flavor"])
    old = inst["flavor"]
    if new["name"] == old["name"]:
        raise InvalidInput(f"instance {inst['name']} already has flavor "
                           f"{new['name']}")
    try:
        check_flavors(old, new)
    except InvalidInput as err:
        raise InvalidInput(f"instance {inst['name']}: {err}") from None
    return dict(params, flavor=new["name"])


# -- steps -----------------------------------------------------------------

def record(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    kind = migration_type(ctx.params)
    old = inst["flavor"]
    new = old
    if ctx.params.get("flavor"):
        new = flavor_snapshot(store.get_flavor(ctx.params["flavor"]))
        check_flavors(old, new)
    mig = steps.record_migration(ctx, kind, inst["host"], old_flavor=old,
                                 new_flavor=new)
    update_migration(ctx, mig["uuid"],
                     progress={"old_vm_state": inst["vm_state"]})
    common.update(ctx, old_flavor=old, new_flavor=new,
                  task_state=states.RESIZE_PREP)
    return {"migration": mig["uuid"], "source": inst["host"],
            "old_vm_state": inst["vm_state"], "old_flavor": old,
            "new_flavor": new, "resize": kind == "resize"}


def schedule(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    ctx.progress("scheduling")
    dest = placement.place(
        store, ctx["new_flavor"], ctx["migration"], inst["uuid"],
        ignore_hosts=ignore_hosts(ctx["resize"], ctx["source"],
                                  CONF.compute.allow_resize_to_same_host),
        force_host=ctx.params.get("host"),
        availability_zone=inst["requested_availability_zone"])
    update_migration(ctx, ctx["migration"], dest_host=dest)
    return {"dest": dest}


def unschedule(ctx):
    ctx.services.store.release(ctx["migration"])


def power_off(ctx):
    ctx.progress(f"powering off on {ctx['source']}")
    update_migration(ctx, ctx["migration"], status=states.MIG_MIGRATING)
    common.update(ctx, task_state=states.RESIZE_MIGRATING)
    out = common.instance_call(ctx, ctx["source"], "move.power_off")
    return {"power_off": out["result"]}


def power_on_source(ctx):
    """An unreachable source is skipped: the guest is off there (this
    task powered it off) or was never touched; the rollback is finished
    when the source answers (finish_rollback)."""
    if ctx["old_vm_state"] != states.STOPPED:
        ctx.progress(f"starting again on {ctx['source']}")
        steps.leave_if_unreachable(ctx, ctx["source"], "instance.start",
                                   None, uuid=ctx.params["uuid"])


def rename(ctx):
    inst = common.instance(ctx)
    common.agent_call(ctx, ctx["source"], "move.to_resize",
                      uuid=inst["uuid"], storage=inst["storage"])


def unrename(ctx):
    """An unreachable source is skipped (its files stay as they are);
    finish_rollback restores them when it answers."""
    inst = common.instance(ctx)
    steps.leave_if_unreachable(ctx, ctx["source"], "move.restore", None,
                               uuid=inst["uuid"], storage=inst["storage"])
    steps.leave_if_unreachable(
        ctx, ctx["source"], "instance.define", None,
        spec=common.guest_spec(inst, ctx["old_flavor"]))


def convert(ctx):
    if not CONF.compute.convert_to_raw_on_migrate:
        return {"converted": False}
    ctx.progress("converting the disk to raw")
    inst = common.instance(ctx)
    return common.agent_call(ctx, ctx["source"], "move.convert_raw",
                             uuid=inst["uuid"], storage=inst["storage"])


def check_storage(ctx):
    storage = common.instance(ctx)["storage"]
    seen = common.shared_storage(ctx.services.hosts, ctx["source"],
                                 ctx["dest"], storage)
    path = copy_path(seen)
    ctx.progress(f"storage: {path}")
    return {"path": path}


def copy(ctx):
    inst = common.instance(ctx)
    src, dest, mig = ctx["source"], ctx["dest"], ctx["migration"]
    args = {"key": mig, "uuid": inst["uuid"], "storage": inst["storage"]}
    if ctx["path"] == "copy":
        args["dest_address"] = steps.host_address(ctx, dest)
        args["dest_base"] = common.agent_call(
            ctx, dest, "move.base", storage=inst["storage"])["path"]
    ctx.progress(f"copying the disks to {dest}")
    status = common.agent_call(ctx, src, "move.copy_start", **args)
    deadline = time.monotonic() + CONF.compute.cold_migration_timeout
    last = None
    while status["state"] == "running":
        if time.monotonic() > deadline:
            raise DroverError(f"copy to {dest} took longer than "
                              f"{CONF.compute.cold_migration_timeout} s")
        if status.get("percent") != last:
            last = status.get("percent")
            update_migration(ctx, mig, progress=progress_of(status))
            ctx.progress(f"copying the disks to {dest}: {last:.0f}%")
        time.sleep(POLL)
        status = common.agent_call(ctx, src, "move.copy_status", key=mig)
        if status["state"] == "none":       # the source agent restarted
            status = common.agent_call(ctx, src, "move.copy_start", **args)
    if status["state"] != "done":
        raise DroverError(f"copy to {dest} failed: {status['error']}")
    result = status.get("result") or {}
    update_migration(ctx, mig, status=states.MIG_POST_MIGRATING,
                     progress={**progress_of(status), "percent": 100.0,
                               "path": ctx["path"], **result})
    common.update(ctx, task_state=states.RESIZE_MIGRATED)
    return {"copied": result}


def remove_copy(ctx):
    """A copy on storage the source does not see may stay behind on an
    unreachable host (recorded; removed later); on shared storage it must
    go before the original is renamed back."""
    inst = common.instance(ctx)
    args = {"uuid": inst["uuid"], "storage": inst["storage"]}
    if ctx["path"] == "shared":
        common.agent_call(ctx, ctx["dest"], "instance.cleanup", **args)
        return
    left = steps.leftover(ctx, "files")
    try:
        steps.leave_if_unreachable(ctx, ctx["dest"], "instance.cleanup",
                                   left, **args)
    except HostGone:
        raise
    except DroverError as err:
        raise HostGone(f"removing the copy on {ctx['dest']} failed: "
                       f"{one_line(err)}", host=ctx["dest"],
                       leftover=left) from None


def finish_disk(ctx):
    inst = common.instance(ctx)
    common.update(ctx, task_state=states.RESIZE_FINISH)
    return {"disk": common.agent_call(
        ctx, ctx["dest"], "move.finish_disk", uuid=inst["uuid"],
        storage=inst["storage"], disk_gb=ctx["new_flavor"]["disk_gb"],
        image_path=ctx["image_path"], image_format=ctx["image_format"])}


def verify(ctx):
    store = ctx.services.store
    new = ctx["new_flavor"]
    common.update(ctx, host=ctx["dest"], flavor=new, flavor_id=new["id"],
                  vm_state=states.RESIZED, task_state=None,
                  power_state=power_for(ctx["old_vm_state"]), error=None,
                  availability_zone=store.host_availability_zone(
                      ctx["dest"]))
    update_migration(ctx, ctx["migration"], status=states.MIG_FINISHED)
    ctx.progress("VERIFY_RESIZE: confirm or revert")


def failed(ctx, err):
    """Back as it was on the source, or ERROR if an undo failed or was
    skipped; then, on local storage, the migration record says the
    rollback is pending and finish_rollback completes it once its hosts
    answer."""
    store = ctx.services.store
    message = one_line(err)
    mig = ctx.get("migration")
    if mig:
        update_migration(ctx, mig, status=states.MIG_ERROR, error=message)
    if undo_complete(store.steps_get(ctx.task_id)):
        common.update(ctx, task_state=None, old_flavor=None, new_flavor=None,
                      error=message)
        return
    inst = common.instance(ctx)
    source = ctx.get("source") or inst["host"]
    if mig and rollback_possible(inst["storage"], source, ctx.get("dest")):
        update_migration(ctx, mig, progress={"rollback": "pending"})
        what = (f"{message}. The move is rolled back when {source} and "
                f"{ctx['dest']} answer: the copy on {ctx['dest']} removed, "
                f"the files on {source} restored; the instance is then "
                "SHUTOFF (or ACTIVE if its guest still runs).")
    else:
        what = (f"{message}. The instance's files are kept on {source} (in "
                "<uuid>_resize if the move got that far); fix the cause, "
                "then rename the directory back if needed and run "
                "'drover server reboot --hard'.")
    common.set_error(ctx, err)
    add_event(ctx, f"{ctx.params.get('action', 'migrate')}_error", what)


# -- a rollback finished later (agent.controller.periodic) ------------------

def rollback_pending(mig):
    return (mig.get("progress") or {}).get("rollback") == "pending"


def finish_rollback(services, mig):
    """Complete a failed move's rollback that its task could not finish
    (a host was unreachable), once both hosts answer: the destination's
    domain and copy removed and its claim released, then the source's
    files restored and its domain defined with the old flavor; the
    instance ends SHUTOFF (ACTIVE if its guest runs there), keeping the
    reason.  Each call can run twice (a restore of what is restored,
    a removal of what is gone do nothing) and the record is marked done
    last, so a crash half way only repeats it: it completes once.  Only
    while the instance is still the failed move's, on its source, in
    ERROR and in no task; HostUnreachable and agent errors are raised
    (tried again at the next tick)."""
    store, hosts = services.store, services.hosts
    inst = store.get_instance(mig["instance_uuid"], deleted=True)
    source, dest = mig["source_host"], mig["dest_host"]
    expected = {"host": source, "vm_state": states.ERROR,
                "task_state": None}
    if inst["vm_state"] == states.DELETED:
        # Deleted meanwhile: what is left of it on the destination is
        # the host clean-up table's (a deleted instance's domain and
        # files go when the host answers).
        store.record_cleanup(dest, inst["uuid"], inst["storage"],
                             ["domain", "files"],
                             reason="deleted during a move's rollback")
        _rollback_done(store, mig)
        return False
    if any(inst[k] != v for k, v in expected.items()):
        return False
    uuid, storage = inst["uuid"], inst["storage"]
    for method in ("instance.destroy", "instance.undefine"):
        hosts.call(dest, method, uuid=uuid)
    hosts.call(dest, "instance.cleanup", uuid=uuid, storage=storage)
    store.release(mig["uuid"])
    hosts.call(source, "move.restore", uuid=uuid, storage=storage)
    hosts.call(source, "instance.define",
               spec=common.guest_spec(inst, mig["old_flavor"]))
    runs = hosts.call(source, "instance.info", uuid=uuid)["state"] == \
        "running"
    store.update_instance(
        uuid, expected=expected, old_flavor=None, new_flavor=None,
        vm_state=states.ACTIVE if runs else states.STOPPED,
        power_state=states.RUNNING if runs else states.SHUTDOWN)
    _rollback_done(store, mig)
    LOG.info("instance %s: the rollback of its failed move to %s is "
             "finished", inst["name"], dest)
    return True


def _rollback_done(store, mig):
    progress = dict(mig.get("progress") or {}, rollback="done")
    store.update_migration(mig["uuid"], progress=progress)


def workflow(params):
    return Workflow("cold_migrate", [
        Step("record", record),
        Step("schedule", schedule, unschedule),
        Step("image", steps.fetch_image("dest")),
        Step("power_off", power_off, power_on_source),
        Step("rename", rename, unrename),
        Step("convert", convert),
        Step("storage", check_storage),
        Step("copy", copy, remove_copy),
        Step("disk", finish_disk),
        Step("define", steps.define_on("dest", "new_flavor"),
             steps.undefine_on("dest")),
        Step("start", steps.start_on("dest", keep_stopped=True),
             steps.destroy_on("dest")),
        Step("verify", verify),
    ], resume="forward", on_failed=failed)
