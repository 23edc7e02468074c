"""Evacuate an instance from a failed host (task kind "evacuate").

0. precheck:  refused (exit 2, one line, nothing written) unless its host
              is fenced or set down (fencing.may_evacuate); a local disk only
              with ``rebuild`` (its data is lost); a given destination must
              exist and not be the failed host; an in-flight move whose
              copy may be the live one is refused (``check_superseded``)
1. record:    migration record "evacuation", status "accepted"
2. settle:    the operation it superseded (admission supersede=True): its
              migration record failed, its claim on a third host released,
              its destination's half copy cleaned (never shared files); a
              guest found running on one of its hosts, or on a failed host
              that was only set down and still answers, fails the
              evacuation
3. schedule:  a destination from the scheduler (the instance's AZ, the
              filters; ``--host`` still filtered; the failed host and the
              superseded move's hosts excluded), claimed with the
              migration's uuid; record "running"      undo: release it
4. image:     the image in the destination's cache (a cache: kept)
5. disk:      shared: the same instance directory (nothing made,
              nothing to undo); local with
              rebuild: a fresh overlay on the image   undo: remove that
                                                      fresh directory
6. define:    the domain on the destination (same uuid, name, flavor, MAC,
              address)                                undo: undefine there
7. start:     if it was not SHUTOFF (a SHUTOFF guest stays off, as in Nova)
              -- the point of no return: the guest may run there now
                                      undo (it failed): destroy on the
                                      destination only, never the failed
                                      host
8. done:      the instance lives on the destination; the claim moved to
              it; record "done"; the superseded resize settled
Then the failed host's return (agent.controller.return_host) removes the
old domain there, releases the instance's claim on it and marks the
record "completed".

Argued from the two promises (a guest never runs on two hosts; no disk
holding the only copy of a guest's data is deleted):

- **Only a host known to be off is evacuated.**  "Unreachable" is never
  enough: a partitioned host still runs its guests.  Fenced (its fence
  agent said off) or set down by the operator is the rule
  (``fencing.may_evacuate``).
- **The operator's mistake is caught by the disk lease, and nothing is
  destroyed.**  If a host set down is in fact alive, the start on the
  destination is refused by QEMU's image lock (and virtlockd) on the
  shared disk; the evacuation fails with that reason.  Its undo only
  touches the destination (destroy a domain that never ran, undefine it,
  release a claim): the failed host is never called, and the shared
  instance directory is never removed -- not by the undo, not ever by this
  module.  The guest keeps running where it was.
- **Shared storage keeps the data; a local disk is not pretended.**  On
  shared storage the destination uses the same directory.  A local disk
  went with the host: without ``rebuild`` the refusal says its data is
  lost; with it the guest is rebuilt from its image with the same id,
  name, flavor, MAC and address and a fresh disk.  The old disk is left
  on the failed host (its removal is the return's, once the store says
  the instance lives elsewhere).
- **A failed evacuation leaves the instance the failed host's.**  The
  record becomes "failed" (Nova's bug 1713783: a returning host destroyed
  guests whose evacuation had failed), the instance stays on its host
  with the reason; it can be evacuated again.
- **Superseded operations** (the failed host's task can never finish):
  a live migration whose source died -- if its job completed the guest
  runs on the destination and evacuating would start a second copy, so
  it is refused when the guest runs there; otherwise its claim on the
  destination is released and the destination's half copy cleaned (the
  agent keeps shared files and refuses to touch a running guest).  A
  cold migration or resize before its rename: the disk is still
  ``<uuid>`` on the failed host, so the move is dropped like the live
  one.  After its rename the only whole copy may be ``<uuid>_resize`` or
  a copy being written: which one is whole cannot be told from here, so
  that is refused (the operator decides, the data stays).  The
  superseded move's hosts are not used as destinations, so a late undo
  of the old task cannot touch the evacuated guest.
- **VERIFY_RESIZE: the copy on the resize's destination wins**, as in
  Nova: there ``instance.host`` is the destination, it is the copy that
  ran last with the new flavor, and Nova evacuates a resized instance
  only after a confirm (its API refuses vm_state resized; a revert needs
  the dead destination, a confirm does not).  Evacuating it is that
  confirm: the new flavor is kept, the resize record confirmed, the
  instance's old claim on the resize source released, the source's
  domain undefined.  ``<uuid>_resize`` on the source is removed only on
  shared storage, where the evacuated guest runs on its own copy; on
  local storage with ``rebuild`` it is the only copy of the guest's data
  and is kept (an event says where).  A VERIFY_RESIZE instance whose
  failed host is the resize's *source* still runs on its destination:
  nothing to evacuate (refused: its host is up).
"""
from agent.common.errors import Conflict, DroverError, InvalidInput, one_line
from agent.controller import fencing, placement, states
from agent.controller.ops import common, cold_migrate, steps
from agent.controller.ops.steps import add_event, update_migration
from agent.controller.tasks.workflow import Step, Workflow

KIND = "evacuate"
TYPE = "evacuation"
EVACUABLE = frozenset({states.ACTIVE, states.STOPPED, states.ERROR,
                       states.RESIZED})
# Moves a superseded task may have in flight, by migration type.
MOVES = ("live-migration", "migration", "resize")
# Steps of a cold move after which its disk is no longer <uuid> on the
# source.
RENAMED = ("rename", "convert", "storage", "copy", "disk", "define",
           "start", "verify")
RUNNING = ("running", "paused", "blocked")
# A resize or cold migration waiting for (or in) confirm or revert.
WAITING = (states.MIG_FINISHED, states.MIG_CONFIRMING, states.MIG_REVERTING)


# -- pure decisions -----------------------------------------------------------

def check_storage(inst, rebuild):
    """A local disk went with its host: only with ``rebuild``."""
    if inst["storage"] == "local" and not rebuild:
        raise Conflict(
            f"instance {inst['name']} has its disk on the local storage of "
            f"{inst['host']}: the data on that local disk is lost; evacuate "
            "with --rebuild to rebuild it from its image (same id, name, "
            "flavor, MAC and address, a fresh disk)")


def final_vm_state(inst, resize_mig=None):
    """What the evacuated instance ends as: SHUTOFF stays SHUTOFF (a
    VERIFY_RESIZE one: as it was before the resize), anything else is
    started (ACTIVE; an ERROR instance is rebuilt ACTIVE, as in Nova)."""
    if inst["vm_state"] == states.RESIZED and resize_mig is not None:
        return cold_migrate.final_vm_state(
            (resize_mig.get("progress") or {}).get("old_vm_state"))
    return states.STOPPED if inst["vm_state"] == states.STOPPED \
        else states.ACTIVE


def superseded_moves(migrations, tasks):
    """The in-flight moves an evacuation takes over: (migration, steps
    done by its task or None).  ``migrations``: the instance's records in
    progress; ``tasks``: {migration type: set of done step names} of its
    unfinished tasks."""
    out = []
    for mig in migrations:
        if mig["type"] in MOVES and mig["status"] not in WAITING:
            out.append((mig, tasks.get(mig["type"])))
    return out


def check_superseded(moves):
    """Conflict for a move whose copy may be the live one: a cold move
    past its rename (``<uuid>_resize`` or a copy being written may be the
    whole one)."""
    for mig, done in moves:
        if mig["type"] == "live-migration":
            continue
        if done and set(done) & set(RENAMED):
            raise Conflict(
                f"the instance's {mig['type']} (migration {mig['id']}) had "
                f"renamed its disk on {mig['source_host']} when the host "
                "failed: which copy is whole cannot be told; nothing "
                "evacuated, the data is kept (look at <uuid>_resize "
                "there)")


def hosts_of(moves):
    """Hosts a superseded move used besides its source."""
    return sorted({m["dest_host"] for m, _ in moves if m["dest_host"]})


def runs_on(infos):
    """The first host whose libvirt has the guest running or paused, from
    {host: domain state or None}."""
    for host, state in sorted(infos.items()):
        if state in RUNNING:
            return host
    return None


# -- reading the store -------------------------------------------------------

def resize_waiting(store, inst):
    """The resize or cold migration of a VERIFY_RESIZE instance."""
    if inst["vm_state"] != states.RESIZED:
        return None
    for mig in store.list_migrations(instance_uuid=inst["uuid"]):
        if mig["type"] in ("migration", "resize"):
            return mig if mig["status"] in WAITING else None
    return None


def _moves(store, inst):
    migs = [m for m in store.list_migrations(instance_uuid=inst["uuid"],
                                             in_progress=True)
            if m["type"] != TYPE]
    done = {}
    kinds = {"live_migrate": "live-migration", "cold_migrate": None,
             "resize": None}
    for task in store.list_tasks(instance_uuid=inst["uuid"],
                                 unfinished=True):
        if task["kind"] not in kinds:
            continue
        names = {s["name"] for s in store.steps_get(task["id"])
                 if s["state"] in ("started", "done", "failed")}
        mtype = kinds[task["kind"]] or cold_migrate.migration_type(
            task["params"])
        done[mtype] = names
    return superseded_moves(migs, done)


# -- up-front checks (agent.controller.admission) -------------------------

def precheck(services, inst, params):
    store = services.store
    if not inst["host"]:
        raise Conflict(f"instance {inst['name']} is on no host")
    source = store.get_host(inst["host"])
    ok, why = fencing.may_evacuate(source)
    if not ok:
        raise Conflict(why)
    rebuild = bool(params.get("rebuild"))
    check_storage(inst, rebuild)
    dest = params.get("host")
    if dest is not None:
        store.get_host(dest)
        if dest == source["name"]:
            raise InvalidInput(f"cannot evacuate {inst['name']} to its "
                               f"failed host {dest}")
    moves = _moves(store, inst)
    check_superseded(moves)
    check_live_landed(services, inst, moves)
    return dict(params, source=source["name"], rebuild=rebuild)


def check_live_landed(services, inst, moves):
    """Conflict, before anything is superseded, when a live migration in
    flight has already put the guest on its (live) destination: the move
    is done and its task finishes it (a restarted controller resumes it:
    its monitor asks where the guest runs); evacuating would start a
    second copy, or leave the store naming the dead host."""
    for mig, _done in moves:
        if mig["type"] != "live-migration" or not mig["dest_host"]:
            continue
        try:
            state = services.hosts.call(mig["dest_host"], "instance.info",
                                        uuid=inst["uuid"])["state"]
        except DroverError:
            continue
        if state in RUNNING:
            raise Conflict(
                f"instance {inst['name']} runs on {mig['dest_host']}: its "
                f"live migration (migration {mig['id']}) completed before "
                f"{mig['source_host']} failed; the move is finished by its "
                "own task, nothing to evacuate")


# -- steps --------------------------------------------------------------------

def record(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    mig = _own_record(store, inst["uuid"], ctx.params["source"]) or \
        store.create_migration(inst["uuid"], TYPE, ctx.params["source"],
                               status=states.MIG_ACCEPTED)
    resize = resize_waiting(store, inst)
    final = final_vm_state(inst, resize)
    update_migration(ctx, mig["uuid"], progress={
        "old_vm_state": inst["vm_state"], "final_vm_state": final,
        "rebuild": ctx.params["rebuild"], "storage": inst["storage"]})
    common.update(ctx, task_state=states.REBUILDING)
    ctx.progress(f"evacuating from {ctx.params['source']}")
    return {"migration": mig["uuid"], "source": ctx.params["source"],
            "old_vm_state": final, "resize": resize and resize["uuid"],
            "moves": [m["uuid"] for m, _ in _moves(store, inst)]}


def _own_record(store, uuid, source):
    """The record a previous run of this step made (a restart): an
    evacuation from ``source`` not yet past "accepted".  One that is
    "done" belongs to an earlier evacuation (its host not cleaned yet)."""
    for mig in store.list_migrations(instance_uuid=uuid, type=TYPE,
                                     status=states.MIG_ACCEPTED):
        if mig["source_host"] == source:
            return mig
    return None


def settle(ctx):
    """The superseded moves: a guest running on one of their hosts fails
    the evacuation; otherwise their records fail, their claims go and
    their destination's half copy is cleaned."""
    store, uuid = ctx.services.store, ctx.params["uuid"]
    inst = common.instance(ctx)
    moves = [store.get_migration(m) for m in ctx["moves"]]
    others = {m["dest_host"] for m in moves if m["dest_host"]}
    if ctx.get("resize"):       # a revert may have started it there
        others.add(store.get_migration(ctx["resize"])["source_host"])
    infos = {}
    for host in others - {ctx["source"]}:
        if store.get_host(host)["state"] != "up":
            continue
        try:
            infos[host] = common.agent_call(ctx, host, "instance.info",
                                            uuid=uuid)["state"]
        except DroverError:
            infos[host] = None
    if store.get_host(ctx["source"])["state"] != "fenced":
        # Set down by the operator, not known off: if its agent answers
        # that the guest runs, evacuating would start a second copy (a
        # rebuilt local disk has no lease to refuse it).
        try:
            infos[ctx["source"]] = common.agent_call(
                ctx, ctx["source"], "instance.info", timeout=10,
                uuid=uuid)["state"]
        except DroverError:
            pass
    where = runs_on(infos)
    if where == ctx["source"]:
        raise DroverError(f"instance {inst['name']} runs on {where}, which "
                          "was set down but answers: not evacuated (it is "
                          "not off; drover host set --up "
                          f"{where} if it is alive)")
    if where is not None:
        raise DroverError(f"instance {inst['name']} runs on {where} (its "
                          "move completed before the host failed): not "
                          "evacuated")
    for mig in moves:
        for alloc in store.list_allocations(consumer=mig["uuid"]):
            if alloc["host"] != ctx["source"]:   # that one: on its return
                store.release(mig["uuid"], host=alloc["host"])
        if states.migration_in_progress(mig["status"]):
            update_migration(ctx, mig["uuid"], status=states.MIG_FAILED,
                             error=f"superseded by evacuation from "
                                   f"{ctx['source']}")
        if mig["type"] == "live-migration" and mig["dest_host"] in infos:
            steps.best_effort(ctx, "cleaning the live migration's copy",
                              mig["dest_host"], "live.cleanup_dest",
                              uuid=uuid, storage=inst["storage"])
    return {"avoid": hosts_of([(m, None) for m in moves])}


def schedule(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    ctx.progress("scheduling")
    dest = placement.place(
        store, inst["flavor"], ctx["migration"], inst["uuid"],
        ignore_hosts=(ctx["source"], *ctx["avoid"]),
        force_host=ctx.params.get("host"),
        availability_zone=inst["requested_availability_zone"])
    update_migration(ctx, ctx["migration"], dest_host=dest,
                     status=states.MIG_RUNNING)
    return {"dest": dest}


def unschedule(ctx):
    ctx.services.store.release(ctx["migration"])


def disk(ctx):
    """Shared: the instance's own directory, seen from the destination;
    local: rebuilt from the image (a fresh disk)."""
    inst = common.instance(ctx)
    if inst["storage"] == "shared":
        ctx.progress(f"using the shared disk on {ctx['dest']}")
        return {"rebuilt": False}
    ctx.progress(f"rebuilding a fresh disk on {ctx['dest']}")
    spec = common.guest_spec(inst)
    common.agent_call(ctx, ctx["dest"], "instance.prepare",
                      uuid=inst["uuid"], storage="local",
                      image_path=ctx["image_path"],
                      image_format=ctx["image_format"],
                      disk_gb=spec["disk_gb"])
    return {"rebuilt": True}


def remove_fresh_disk(ctx):
    """Only the fresh local disk this task made; never shared files."""
    inst = common.instance(ctx)
    if inst["storage"] != "local":
        return
    steps.leave_if_unreachable(ctx, ctx["dest"], "instance.cleanup",
                               steps.leftover(ctx, "files"),
                               uuid=inst["uuid"], storage="local")


def start(ctx):
    if ctx["old_vm_state"] == states.STOPPED:
        return
    ctx.progress(f"starting on {ctx['dest']}")
    common.instance_call(ctx, ctx["dest"], "instance.start")


def done(ctx):
    store = ctx.services.store
    uuid, dest = ctx.params["uuid"], ctx["dest"]
    inst = common.instance(ctx)
    store.move_allocations(ctx["migration"], uuid, host=dest)
    if ctx.get("resize"):
        _confirm_resize(ctx, inst, store.get_migration(ctx["resize"]))
    vm_state = ctx["old_vm_state"]
    common.update(ctx, host=dest, vm_state=vm_state, task_state=None,
                  power_state=cold_migrate.power_for(vm_state), error=None,
                  old_flavor=None, new_flavor=None,
                  availability_zone=store.host_availability_zone(dest))
    update_migration(ctx, ctx["migration"], status=states.MIG_DONE,
                     error=None)
    ctx.progress(f"{states.status(vm_state)} on {dest}; {ctx['source']} is "
                 "cleaned when it returns")


def _confirm_resize(ctx, inst, mig):
    """VERIFY_RESIZE evacuated: the resize is confirmed (its copy on the
    failed host won).  The claim it held there becomes the instance's (to
    go when that host is cleaned); the old one on the resize source goes
    with the source's domain; ``<uuid>_resize`` there only on shared
    storage (on local storage it is the only copy of the guest's data)."""
    store, uuid, source = ctx.services.store, inst["uuid"], mig["source_host"]
    store.release(uuid, host=source)
    store.move_allocations(mig["uuid"], uuid)
    update_migration(ctx, mig["uuid"], status=states.MIG_CONFIRMED)
    if source in (ctx["source"], ctx["dest"]):
        return
    steps.best_effort(ctx, "undefining the resize source's domain", source,
                      "instance.undefine", uuid=uuid)
    if inst["storage"] == "shared":
        steps.best_effort(ctx, "removing <uuid>_resize", source,
                          "move.discard", uuid=uuid, storage="shared")
    else:
        add_event(ctx, "evacuate_kept_resize",
                  f"the disk from before the resize is kept in "
                  f"{uuid}_resize on {source} (local storage): remove it "
                  "once it is no longer wanted", result="Success")


def failed(ctx, err):
    """Not past the commit point: the instance stays its failed host's,
    as it was, with the reason; the record "failed" (a returning host
    keeps its guest).  Past it: ERROR, the record "error"."""
    message = one_line(err)
    if ctx.get("migration"):
        update_migration(ctx, ctx["migration"],
                         status=states.MIG_ERROR if ctx.committed
                         else states.MIG_FAILED, error=message)
    common.fail_past_commit(ctx, err)


def workflow(params):
    return Workflow(KIND, [
        Step("record", record),
        Step("settle", settle),
        Step("schedule", schedule, unschedule),
        Step("image", steps.fetch_image("dest")),
        Step("disk", disk, remove_fresh_disk),
        Step("define", steps.define_on("dest"), steps.undefine_on("dest")),
        # Started (or defined, for a SHUTOFF guest) on the destination:
        # from here the evacuation only goes forward.
        Step("start", start, steps.destroy_on("dest"), commit=True),
        Step("done", done),
    ], resume="forward", on_failed=failed)
