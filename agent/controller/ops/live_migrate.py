"""Live-migrate a running instance to another host.

1. record:   the migration record (live-migration, pre-migrating)
2. schedule: the destination (given or the scheduler's), claimed with the
             migration's uuid                     undo: release the claim
3. checks:   pre-checks (live_checks), the shared-storage probe (the
             API's, when it probed the given destination), block or
             shared migration, the source's disk facts
4. prepare:  image in the destination's cache, instance directory, block
             migration disks, bridge check        undo: clean the destination
5. migrate:  the job started on the source agent  undo: abort it; the guest
                                                  stays on the source
6. monitor:  wait (long polls) until the job ends, recording progress;
             failed or cancelled jobs fail the task; a completed one is
             the point of no return (nothing is undone after it)
7. finish:   the instance's host is the destination, claims moved, the
             migration completed, the source's local directory removed

Resumed forward after a controller restart: the job keeps running in the
source agent and ``migration.start`` with the same migration uuid finds
it; a job the agent lost is reconciled with where libvirt has the domain.
On failure the instance stays ACTIVE on the source (ERROR if its domain
is not running there) and the migration is failed or cancelled with the
reason.
"""
import logging
import time

from agent.common.errors import Conflict, DroverError, NotFound, one_line
from agent.common.rpc import methods as rpc
from agent.conf import CONF
from agent.controller import images, live_checks, placement, states
from agent.controller.ops import common
from agent.controller.tasks.workflow import Step, Workflow
from agent.transport.errors import HostUnreachable

LOG = logging.getLogger(__name__)

KIND = "live_migrate"
TYPE = "live-migration"
# How long the monitor keeps retrying an unreachable source agent before
# it asks libvirt where the guest is.
SOURCE_GRACE_S = 120


class Cancelled(DroverError):
    """The operator aborted the migration."""


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

def record(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    mig = in_progress(store, inst["uuid"]) or store.create_migration(
        inst["uuid"], TYPE, inst["host"], dest_host=ctx.params.get("host"))
    return {"migration_uuid": mig["uuid"], "migration_id": mig["id"],
            "source": mig["source_host"]}


def schedule(ctx):
    store = ctx.services.store
    inst = common.instance(ctx)
    ctx.progress("scheduling")
    dest = placement.place(
        store, inst["flavor"], ctx["migration_uuid"], inst["uuid"],
        ignore_hosts=(ctx["source"],), force_host=ctx.params.get("host"),
        availability_zone=inst["requested_availability_zone"])
    _set_migration(ctx, dest_host=dest)
    return {"dest": dest}


def unschedule(ctx):
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
    inst = common.instance(ctx)
    common.agent_call(ctx, ctx["dest"], "live.cleanup_dest",
                      uuid=inst["uuid"], storage=inst["storage"])


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
        common.agent_call(ctx, ctx["source"], "migration.abort", uuid=uuid)
    except (Conflict, NotFound):
        pass
    try:
        status = _wait_job(ctx, uuid)
    except NotFound:
        status = None
    if status and status["status"] == rpc.COMPLETED:
        raise DroverError("the migration completed while it was being "
                          "rolled back")
    if where(ctx) == ctx["dest"]:
        raise DroverError(f"the guest runs on {ctx['dest']}, not on "
                          f"{ctx['source']}")


def monitor(ctx):
    status = _wait_job(ctx, ctx.params["uuid"], record_progress=True)
    if status is None:      # the source agent lost the job
        if where(ctx) == ctx["dest"]:
            return {"elapsed": None, "downtime_ms": None, "final": {}}
        raise DroverError("the source agent lost the migration job and the "
                          f"guest is not on {ctx['dest']}")
    if status["status"] == rpc.COMPLETED:
        return {"elapsed": status["elapsed"],
                "downtime_ms": status["final_downtime_ms"],
                "final": status.get("progress") or {}}
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
    try:
        common.agent_call(ctx, source, "live.cleanup_source", uuid=uuid,
                          storage=inst["storage"])
    except DroverError as err:      # the guest has moved; tidy up later
        LOG.warning("instance %s: cleaning %s after live migration: %s",
                    uuid, source, err)
    ctx.progress(f"completed: on {dest} after {ctx['elapsed']} s, downtime "
                 f"{ctx['downtime_ms']} ms")


def on_failed(ctx, err):
    store = ctx.services.store
    uuid = ctx.params["uuid"]
    if ctx.get("migration_uuid"):
        status = states.MIG_CANCELLED if isinstance(err, Cancelled) \
            else states.MIG_FAILED
        mig = store.get_migration(ctx["migration_uuid"])
        if states.migration_in_progress(mig["status"]):
            _set_migration(ctx, status=status,
                           error=one_line(err))
    inst = store.get_instance(uuid)
    source = ctx.get("source") or inst["host"]
    try:
        state = common.agent_call(ctx, source, "instance.info",
                                  uuid=uuid)["state"]
    except DroverError:
        state = None
    if state in ("running", "paused", "blocked"):
        common.reset_task_state(ctx, err)
    else:
        common.set_error(ctx, err)


# -- helpers ------------------------------------------------------------------

def where(ctx):
    """The host whose libvirt has the instance's domain running (source
    or destination), or None."""
    for host in (ctx["source"], ctx["dest"]):
        try:
            info = common.agent_call(ctx, host, "instance.info",
                                     uuid=ctx.params["uuid"])
        except (NotFound, DroverError):
            continue
        if info["state"] in ("running", "paused", "blocked"):
            return host
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
                raise DroverError(f"source {ctx['source']} unreachable: "
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
    return Workflow(KIND, [
        Step("record", record),
        Step("schedule", schedule, unschedule),
        Step("checks", checks),
        Step("prepare", prepare, clean_dest),
        Step("migrate", migrate, stop_job),
        # The job completed: the guest runs on the destination, so from
        # here the task only goes forward.
        Step("monitor", monitor, commit=True),
        Step("finish", finish),
    ], resume="forward", on_failed=on_failed)
