"""Live-migrate a running instance to another host.

1. schedule: the migration record (live-migration, pre-migrating; the
             one in progress when resumed), then the destination (given
             or the scheduler's), claimed with the migration's uuid
             (a claim already held is kept)       undo: release the claim
2. checks:   pre-checks (live_checks), the shared-storage probe (the
             API's, when it probed the given destination), block or
             shared migration, the source's disk facts
   predict:  only with ``predict`` asked for: the prediction (agent.controller
             .move_prediction, about 1 s of dirty-rate measurement)
             stored in the migration record; a failed measurement is
             recorded as such and does not stop the migration
3. prepare:  image in the destination's cache, instance directory, block
             migration disks, bridge check        undo: clean the destination
                                                  (libvirt's incoming copy,
                                                  the directory; see
                                                  agent.host.migration
                                                  .dest_cleanup)
4. migrate:  the job started on the source agent  undo: abort it; the guest
                                                  stays on the source
5. monitor:  wait (long polls) until the job ends, recording progress;
             failed or cancelled jobs fail the task; a completed one is
             the point of no return (nothing is undone after it).  The
             source agent calls a job completed at the switch-over,
             when the destination's libvirt runs the guest, while
             libvirt on the source still stops its paused copy (about
             0.2 s; see agent.host.migration.switchover): an incoming
             migration of the instance to the source, or the removal of
             its local directory there, waits for that
6. finish:   the instance's host is the destination, claims moved, the
             migration completed, the source's local directory removed
             (recorded in the host clean-up table if that fails; shared
             storage leaves nothing on the source)

Resumed forward after a controller restart: the job keeps running in the
source agent and ``migration.start`` with the same migration uuid finds
it; a job the agent lost is reconciled with where libvirt has the domain.
On failure the migration is failed or cancelled with the reason (also in
the task's events, ``server event list``); the destination's claim is
released unless the destination runs the guest, whichever undo stopped;
an instance whose guest is still active on the source, and only there,
stays ACTIVE with no fault; else it is ERROR.  An undo on an unreachable
host is skipped (stop_job on the source, clean_dest on the destination),
what stays on the destination recorded in the host clean-up table.
"""
import logging
import time

from agent.common.errors import (Conflict, DroverError, HostGone, NotFound,
                                 one_line)
from agent.common.rpc import methods as rpc
from agent.conf import CONF
from agent.controller import (images, live_checks, move_prediction,
                              placement, states)
from agent.controller.ops import common, steps
from agent.controller.tasks.workflow import Step, Workflow
from agent.transport.errors import HostUnreachable

LOG = logging.getLogger(__name__)

KIND = "live_migrate"
TYPE = "live-migration"
# How long the monitor keeps retrying an unreachable source agent before
# it asks libvirt where the guest is.
SOURCE_GRACE_S = 120
# How long the undo retries an unreachable destination to clean it, and
# how long one clean-up may take there (it waits for libvirt first).
DEST_GRACE_S = 120
DEST_RETRY_S = 2
CLEANUP_TIMEOUT_S = 60


class Cancelled(DroverError):
    """The operator aborted the migration."""


class SourceGone(DroverError):
    """The source agent did not answer for SOURCE_GRACE_S."""


def precheck(services, inst, params):
    """What can be refused before the task starts (exit 2): an instance
    that is not running or paused, a given destination that is the
    source, down, disabled or incompatible, block migration on shared
    storage and shared-storage migration without shared storage (probed
    between the two hosts when the destination is given)."""
    store, host = services.store, params.get("host")
    block = params.get("block")
    live_checks.check_instance(inst)
    shared = None
    if host is not None:
        source = store.get_host(inst["host"])
        live_checks.check_hosts(source, store.get_host(host))
        shared = common.shared_storage(services.hosts, source["name"], host,
                                       inst["storage"])
        live_checks.choose_block(block, shared)
    elif block and inst["storage"] == "shared":
        live_checks.choose_block(block, True)
    return dict(params, shared=shared)


def in_progress(store, instance_uuid):
    """The instance's live migration that is not over, or None."""
    migs = store.list_migrations(instance_uuid=instance_uuid, type=TYPE,
                                 in_progress=True)
    return migs[0] if migs else None


def _migration(ctx):
    return ctx.services.store.get_migration(ctx["migration_uuid"])


def _set_migration(ctx, **values):
    return ctx.services.store.update_migration(ctx["migration_uuid"],
                                               **values)


# -- steps --------------------------------------------------------------------

def _migration_record(store, inst, ctx):
    mig = in_progress(store, inst["uuid"]) or store.create_migration(
        inst["uuid"], TYPE, inst["host"], dest_host=ctx.params.get("host"))
    return {"migration_uuid": mig["uuid"], "migration_id": mig["id"],
            "source": mig["source_host"]}


def schedule(ctx):
    """The record and the claim in one step: both are idempotent (a
    resumed step finds the migration in progress and the claim it holds),
    and a step of its own cost the record a round of task-log writes."""
    store = ctx.services.store
    inst = common.instance(ctx)
    # Known at once to the undo and the failure hook, should placing fail.
    ctx.data.update(_migration_record(store, inst, ctx))
    ctx.progress("scheduling")
    dest = placement.place(
        store, inst["flavor"], ctx["migration_uuid"], inst["uuid"],
        ignore_hosts=(ctx["source"],), force_host=ctx.params.get("host"),
        availability_zone=inst["requested_availability_zone"])
    _set_migration(ctx, dest_host=dest)
    return {"migration_uuid": ctx["migration_uuid"],
            "migration_id": ctx["migration_id"], "source": ctx["source"],
            "dest": dest}


def unschedule(ctx):
    if ctx.get("migration_uuid"):
        ctx.services.store.release(ctx["migration_uuid"])


def checks(ctx):
    store, hosts = ctx.services.store, ctx.services.hosts
    inst = common.instance(ctx)
    live_checks.check_instance(inst)
    live_checks.check_hosts(store.get_host(ctx["source"]),
                            store.get_host(ctx["dest"]))
    shared = ctx.params.get("shared")
    if shared is None or ctx.params.get("host") != ctx["dest"]:
        shared = common.shared_storage(hosts, ctx["source"], ctx["dest"],
                                inst["storage"])
    block = live_checks.choose_block(ctx.params.get("block"), shared)
    facts = None
    if block:
        facts = common.agent_call(ctx, ctx["source"], "live.disk_facts",
                                  uuid=inst["uuid"], storage=inst["storage"])
    return {"shared": shared, "block": block, "disk_facts": facts}


def predict(ctx):
    inst = common.instance(ctx)
    try:
        made = move_prediction.predict_move(ctx.services, inst, ctx["dest"],
                                            block=ctx["block"])
    except DroverError as err:
        made = {"error": one_line(err)}
    _set_migration(ctx, prediction=made)
    ctx.progress(f"predicted: {made.get('verdict')}, "
                 f"{made.get('duration_s')} s, downtime "
                 f"{made.get('downtime_s')} s" if "error" not in made
                 else f"no prediction: {made['error']}")


def prepare(ctx):
    inst = common.instance(ctx)
    _set_migration(ctx, status=states.MIG_PREPARING)
    image = ctx.services.store.get_image(inst["image_uuid"])
    images.ensure_on_host(ctx.services.hosts, ctx["dest"], image,
                          ctx.progress)
    ctx.progress(f"preparing {ctx['dest']}")
    common.agent_call(ctx, ctx["dest"], "live.prepare_dest",
                      uuid=inst["uuid"], storage=inst["storage"],
                      block_migration=ctx["block"],
                      disk_facts=ctx["disk_facts"])


def clean_dest(ctx):
    """Undo of prepare: libvirt's incoming copy and the destination's
    instance directory go, as far as the destination agent's decision
    allows given the source's domain state read here (the job has ended:
    stop_job ran before).  An unreachable destination is retried for
    DEST_GRACE_S; after that, or when the agent keeps the directory
    because the source's state is unknown, the directory (block
    migration, local storage) is recorded as a leftover of the
    destination (agent.controller.host_cleanups removes it once the
    instance's own disk is seen intact on its host) and the undo goes on
    (the claim is released)."""
    inst = common.instance(ctx)
    source_state = _state_on(ctx, ctx["source"])
    since = time.monotonic()
    while True:
        try:
            out = common.agent_call(
                ctx, ctx["dest"], "live.cleanup_dest",
                timeout=CLEANUP_TIMEOUT_S, uuid=inst["uuid"],
                storage=inst["storage"], source_state=source_state)
            ctx.progress(
                f"{ctx['dest']} cleaned: its domain "
                f"{'/'.join(out.get('domain') or ['none'])}"
                f"{' destroyed' if out.get('destroyed') else ''}, "
                f"directory {'removed' if out.get('removed') else 'kept'}")
            return
        except Conflict as err:
            if source_state is not None:
                raise
            _leave_copy(ctx, inst, err)
        except HostUnreachable as err:
            if time.monotonic() - since > DEST_GRACE_S:
                _leave_copy(ctx, inst, err)
            ctx.progress(f"cleaning {ctx['dest']}: {err}; retrying")
            time.sleep(DEST_RETRY_S)


def _leave_copy(ctx, inst, err):
    """HostGone: what the destination keeps (its copy of a block
    migration's disk) is recorded for later."""
    leftover = None
    if ctx["block"] and inst["storage"] == "local":
        leftover = steps.leftover(ctx, "files")
    raise HostGone(f"{ctx['dest']} not cleaned now: {one_line(err)}",
                   host=ctx["dest"], leftover=leftover) from None


def migrate(ctx):
    store = ctx.services.store
    dest = store.get_host(ctx["dest"])
    kind = "block" if ctx["block"] else "shared-storage"
    ctx.progress(f"{kind} live migration {ctx['source']} -> {ctx['dest']}")
    status = common.agent_call(
        ctx, ctx["source"], "migration.start", uuid=ctx.params["uuid"],
        dest_address=dest["address"],
        migration_address=dest["migration_address"] or dest["address"],
        migration_uuid=ctx["migration_uuid"], block_migration=ctx["block"],
        shared_storage_checked=ctx["shared"])
    _set_migration(ctx, status=states.MIG_RUNNING)
    return {"job_started_at": status.get("created_at")}


def stop_job(ctx):
    """Undo of migrate: no job may still be running, and the guest must
    be on the source."""
    uuid = ctx.params["uuid"]
    try:
        _abort(ctx, uuid)
        status = _wait_job(ctx, uuid)
    except NotFound:
        status = None
    except (HostUnreachable, SourceGone) as err:
        if where(ctx) == ctx["dest"]:
            raise DroverError(f"the guest runs on {ctx['dest']} and "
                              f"{ctx['source']} is unreachable") from None
        # A source that cannot be reached has no job that can finish
        # either (its migration traffic is cut with it, or it is off); the
        # destination's clean-up keeps whatever the source may still
        # need (it is told the source's state is unknown).
        raise HostGone(f"source {ctx['source']} unreachable: the job "
                       f"could not be aborted: {one_line(err)}",
                       host=ctx["source"]) from None
    if status and status["status"] == rpc.COMPLETED:
        raise DroverError("the migration completed while it was being "
                          "rolled back")
    if where(ctx) == ctx["dest"]:
        raise DroverError(f"the guest runs on {ctx['dest']}, not on "
                          f"{ctx['source']}")


def _abort(ctx, uuid):
    """Abort the job, retrying an unreachable source for SOURCE_GRACE_S;
    a job that is over (or none) is fine."""
    since = time.monotonic()
    while True:
        try:
            common.agent_call(ctx, ctx["source"], "migration.abort",
                              uuid=uuid)
            return
        except (Conflict, NotFound):
            return
        except HostUnreachable:
            if time.monotonic() - since > SOURCE_GRACE_S:
                raise
            time.sleep(1)


def monitor(ctx):
    try:
        status = _wait_job(ctx, ctx.params["uuid"], record_progress=True)
    except SourceGone:
        # The source died (or is cut off) with the job: if the guest runs
        # on the destination, the switch-over happened and the move is
        # done; otherwise it failed, and the undo decides what stays.
        if where(ctx) == ctx["dest"]:
            return {"elapsed": None, "downtime_ms": None, "final": {}}
        raise
    if status is None:      # the source agent lost the job
        if where(ctx) == ctx["dest"]:
            return {"elapsed": None, "downtime_ms": None, "final": {}}
        raise DroverError("the source agent lost the migration job and the "
                          f"guest is not on {ctx['dest']}")
    if status["status"] == rpc.COMPLETED:
        return {"elapsed": status["elapsed"],
                "downtime_ms": status["final_downtime_ms"],
                "final": {**(status.get("progress") or {}),
                          "bandwidth_limit": status.get("bandwidth_limit")}}
    reason = status["reason"] or status["status"]
    if status["status"] == rpc.CANCELLED:
        raise Cancelled(f"live migration cancelled: {reason}")
    raise DroverError(f"live migration failed: {reason}")


def finish(ctx):
    store = ctx.services.store
    uuid, source, dest = ctx.params["uuid"], ctx["source"], ctx["dest"]
    inst = common.instance(ctx)
    store.release(uuid, host=source)
    store.move_allocations(ctx["migration_uuid"], uuid, host=dest)
    common.update(ctx, host=dest, task_state=None, error=None,
                  availability_zone=store.host_availability_zone(dest))
    mig = _migration(ctx)
    _set_migration(ctx, status=states.MIG_COMPLETED, error=None,
                   progress={**(mig.get("progress") or {}),
                             **ctx["final"], "percent": 100,
                             "elapsed": ctx["elapsed"],
                             "downtime_ms": ctx["downtime_ms"]})
    # Only a local directory is left on the source (on shared storage the
    # directory is the guest's, now used from the destination).
    if inst["storage"] == "local":
        try:
            common.agent_call(ctx, source, "live.cleanup_source", uuid=uuid,
                              storage=inst["storage"])
        except DroverError as err:      # the guest has moved; tidy up later
            LOG.warning("instance %s: cleaning %s after live migration: %s",
                        uuid, source, err)
            store.record_cleanup(source, uuid, inst["storage"], ["files"],
                                 reason=f"after live migration: "
                                 f"{one_line(err)}")
    ctx.progress(f"completed: on {dest} after {ctx['elapsed']} s, downtime "
                 f"{ctx['downtime_ms']} ms")


def on_failed(ctx, err):
    """The migration record is failed (cancelled for an operator's
    abort) with the reason, which the task's events show too.  The
    destination's claim goes unless the destination runs the guest
    (before the migrate step no job existed: it cannot).  A guest still
    active on the source, and only there, is fine: no task, no fault.
    Anything else is ERROR."""
    store = ctx.services.store
    reason = _task_error(ctx) or str(err)
    if ctx.get("migration_uuid"):
        status = states.MIG_CANCELLED if isinstance(err, Cancelled) \
            else states.MIG_FAILED
        mig = store.get_migration(ctx["migration_uuid"])
        if states.migration_in_progress(mig["status"]):
            _set_migration(ctx, status=status,
                           error=one_line(reason))
    source = ctx.get("source") or common.instance(ctx)["host"]
    dest = ctx.get("dest")
    on_dest = bool(dest) and _active(_state_on(ctx, dest))
    if not on_dest and ctx.get("migration_uuid"):
        # The guest is not on the destination: no job ran, or the undo
        # stopped it (or found its source gone, see stop_job).
        store.release(ctx["migration_uuid"])
    if not on_dest and _active(_state_on(ctx, source)):
        LOG.warning("instance %s: live migration failed, the guest stays "
                    "on %s: %s", ctx.params["uuid"], source, reason)
        common.update(ctx, task_state=None, error=None)
    else:
        common.set_error(ctx, RuntimeError(reason))


# -- helpers ------------------------------------------------------------------

def where(ctx):
    """The host whose libvirt has the instance's domain running (source
    or destination), or None."""
    for host in (ctx["source"], ctx["dest"]):
        if _active(_state_on(ctx, host)):
            return host
    return None


def _state_on(ctx, host):
    """The instance's domain state on ``host``; None if it has none or
    the host's agent cannot tell."""
    try:
        return common.agent_call(ctx, host, "instance.info",
                                 uuid=ctx.params["uuid"])["state"]
    except DroverError:     # NotFound, unreachable, ...
        return None


def _active(state):
    return state in ("running", "paused", "blocked")


def _task_error(ctx):
    """The task's error as the engine recorded it (the failure, and the
    undo's if one failed)."""
    try:
        return ctx.services.store.task_get(ctx.task_id).get("error")
    except DroverError:
        return None


def _wait_job(ctx, uuid, record_progress=False):
    """The job's final status (long polls on the source agent); None if
    the agent has no such job."""
    wait_s = CONF.migration.wait_interval
    unreachable_since = None
    while True:
        try:
            status = common.agent_call(ctx, ctx["source"], "migration.wait",
                                       timeout=wait_s + 30, uuid=uuid,
                                       wait_s=wait_s)
        except NotFound:
            return None
        except HostUnreachable as err:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > SOURCE_GRACE_S:
                raise SourceGone(f"source {ctx['source']} unreachable: "
                                 f"{err}") from None
            time.sleep(1)
            continue
        unreachable_since = None
        if status.get("migration_uuid") not in (None,
                                                ctx["migration_uuid"]):
            return None
        if status["status"] not in rpc.ACTIVE:
            return status
        if record_progress:
            _record(ctx, status)


def _record(ctx, status):
    p = status.get("progress") or {}
    _set_migration(ctx, progress=p)
    mib = 1 << 20
    eta = p.get("eta")
    ctx.progress(f"{status['status']} {p.get('percent', 0)}%: memory "
                 f"{p.get('memory_remaining', 0) // mib} MiB left"
                 + (f", disk {p.get('disk_remaining', 0) // mib} MiB left"
                    if p.get("disk_total") else "")
                 + f", iteration {p.get('iteration', 0)}, dirty "
                 f"{p.get('dirty_rate', 0) // mib} MiB/s, "
                 f"ETA {'?' if eta is None else f'{eta:g} s'}")


def workflow(params):
    # The predict step only when asked for: a step costs a few writes of
    # the task log even when it does nothing (the params of a task never
    # change, so a resumed task has the same steps).
    predicting = [Step("predict", predict)] if params.get("predict") else []
    return Workflow(KIND, [
        Step("schedule", schedule, unschedule),
        Step("checks", checks),
        *predicting,
        Step("prepare", prepare, clean_dest),
        Step("migrate", migrate, stop_job),
        # The job completed: the guest runs on the destination, so from
        # here the task only goes forward.
        Step("monitor", monitor, commit=True),
        Step("finish", finish),
    ], resume="forward", on_failed=on_failed)
