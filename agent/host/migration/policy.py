"""Live-migration decisions as pure functions: libvirt flags and
parameters, downtime steps, the completion timeout, the monitor's next
action and progress figures from libvirt job statistics.

The monitor loop in ``job.py`` only polls, calls ``decide`` and applies
the action it returns.
"""
import dataclasses
import ipaddress
import re

import libvirt

from agent.common.errors import InvalidInput
from agent.common import validate
# The schedule's figures are shared with the controller's prediction.
from agent.common.migration_schedule import (  # noqa: F401
    GiB, MIN_MEMORY_GB, completion_timeout, data_gb, downtime_steps)

DEFAULT_PAGE_SIZE = 4096

ABORT = "abort"
FORCE_COMPLETE = "force_complete"
TIMEOUT_ACTIONS = (ABORT, FORCE_COMPLETE)

# Monitor actions.
NOTHING = "nothing"
SET_DOWNTIME = "set_downtime"
ABORT_JOB = "abort_job"
START_POST_COPY = "start_post_copy"
PAUSE = "pause"

OPERATOR_ABORT = "cancelled by the operator"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
_DISK_TARGET = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,2}$")


# -- flags and parameters ---------------------------------------------------

def migration_flags(block_migration, shared_storage_checked,
                    permit_auto_converge=False, permit_post_copy=False):
    """VIR_MIGRATE_* flags of a peer-to-peer live migration.

    ``shared_storage_checked`` is the result of drover's own check (a file
    written on one host seen on the other): only then is the unsafe flag
    set, because libvirt cannot tell that a plain directory is shared.
    Block migration copies the top image layer (NON_SHARED_INC) onto
    destination disks created over the same backing files.  Post-copy,
    when permitted, is preferred over auto-converge.
    """
    if block_migration and shared_storage_checked:
        raise InvalidInput("block migration on shared storage would copy "
                           "the disks onto themselves")
    flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
             | libvirt.VIR_MIGRATE_PERSIST_DEST
             | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
    if block_migration:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    if shared_storage_checked:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    if permit_post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    elif permit_auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    return flags


def migration_uri(address, port=None):
    """``tcp://ADDR[:PORT]`` for QEMU's migration stream: an address, or a
    host name, never left for libvirt to guess (lab names do not
    resolve)."""
    host = str(address)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise InvalidInput(f"not an address or host name: {address!r}"
                               ) from None
    else:
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    if port is None:
        return f"tcp://{host}"
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"migration port must be 1..65535, not {port!r}")
    return f"tcp://{host}:{port}"


def migration_params(migration_address, *, bandwidth=0, migrate_disks=(),
                     dest_name=None, dest_xml=None, persistent_xml=None,
                     port=None):
    """The params dict of ``virDomain.migrateToURI3``.

    ``bandwidth`` is in MiB/s (0: unlimited); ``migrate_disks`` names the
    disk targets (vda, ...) a block migration copies.
    """
    params = {libvirt.VIR_MIGRATE_PARAM_URI:
              migration_uri(migration_address, port)}
    if not isinstance(bandwidth, int) or bandwidth < 0:
        raise InvalidInput(f"bandwidth must be >= 0 MiB/s, not {bandwidth!r}")
    if bandwidth:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth
    disks = list(migrate_disks)
    for target in disks:
        if not _DISK_TARGET.match(str(target)):
            raise InvalidInput(f"invalid disk target: {target!r}")
    if disks:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = disks
    if dest_name is not None:
        params[libvirt.VIR_MIGRATE_PARAM_DEST_NAME] = \
            validate.domain_name(dest_name)
    if dest_xml is not None:
        params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = dest_xml
    if persistent_xml is not None:
        params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent_xml
    return params


# -- downtime steps and timeout ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plan:
    """What the monitor enforces for one migration."""
    steps: tuple                 # (at_seconds, downtime_ms) pairs
    timeout: float = 0           # seconds; 0: none
    timeout_action: str = ABORT
    post_copy: bool = False      # the migration was started with POSTCOPY

    def __post_init__(self):
        if self.timeout_action not in TIMEOUT_ACTIONS:
            raise InvalidInput(f"timeout action must be one of "
                               f"{', '.join(TIMEOUT_ACTIONS)}, not "
                               f"{self.timeout_action!r}")


def make_plan(flags, size_gb, opts):
    """The Plan of a migration with ``flags`` moving ``size_gb`` GiB;
    ``opts`` holds the [migration] option values (``CONF.migration``)."""
    return Plan(
        steps=tuple(downtime_steps(opts.downtime_max, opts.downtime_steps,
                                   opts.downtime_delay, size_gb,
                                   base_ms=opts.downtime)),
        timeout=completion_timeout(opts.completion_timeout, size_gb),
        timeout_action=opts.timeout_action,
        post_copy=bool(flags & libvirt.VIR_MIGRATE_POSTCOPY))


# -- the monitor's decisions ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class State:
    """What the monitor did so far and what the operator asked for."""
    step: int = -1               # index of the last downtime step applied
    abort_requested: bool = False
    force_requested: bool = False
    aborting: bool = False
    forced: str | None = None    # START_POST_COPY or PAUSE once done
    timed_out: bool = False


@dataclasses.dataclass(frozen=True)
class Action:
    kind: str = NOTHING
    downtime_ms: int | None = None
    reason: str | None = None


def job_active(stats):
    """True while libvirt reports a running (unbounded) migration job."""
    return (stats or {}).get("type") == libvirt.VIR_DOMAIN_JOB_UNBOUNDED


def decide(stats, elapsed, plan, state):
    """The monitor's next action and the state after it.

    Priority: an operator's abort, the completion timeout, an operator's
    force-complete, then the latest downtime step that is due.  Nothing is
    done while libvirt has no active job, once aborting, or once forced.
    """
    if not job_active(stats) or state.aborting:
        return Action(), state
    if state.abort_requested and state.forced != START_POST_COPY:
        return (Action(ABORT_JOB, reason=OPERATOR_ABORT),
                dataclasses.replace(state, aborting=True))
    if plan.timeout and elapsed >= plan.timeout and not state.timed_out:
        state = dataclasses.replace(state, timed_out=True)
        reason = f"completion timeout of {plan.timeout:g} s reached"
        if plan.timeout_action == ABORT:
            return (Action(ABORT_JOB, reason=reason),
                    dataclasses.replace(state, aborting=True))
        if state.forced is None:
            return _force(plan, state, reason)
    if state.force_requested and state.forced is None:
        return _force(plan, state, "forced by the operator")
    if state.forced is None:
        return _downtime_step(plan, state, elapsed)
    return Action(), state


def before_start(plan, state):
    """What to do before the migration starts: set the downtime of the
    steps due at 0 s, so that it holds from the first pre-copy round
    (otherwise QEMU's own 300 ms holds until the monitor's first poll,
    and a migration that ends by then may pause the guest that long)."""
    return _downtime_step(plan, state, 0)


def _downtime_step(plan, state, elapsed):
    """The latest downtime step due at ``elapsed``, if not applied yet."""
    due = [i for i, (at, _ms) in enumerate(plan.steps) if at <= elapsed]
    if not due or due[-1] <= state.step:
        return Action(), state
    return (Action(SET_DOWNTIME, downtime_ms=plan.steps[due[-1]][1]),
            dataclasses.replace(state, step=due[-1]))


def _force(plan, state, reason):
    kind = START_POST_COPY if plan.post_copy else PAUSE
    return (Action(kind, reason=reason),
            dataclasses.replace(state, forced=kind))


# -- progress ---------------------------------------------------------------

def progress(stats):
    """Progress figures from ``virDomain.jobStats()``: bytes of memory,
    disk and all data (total, processed, remaining), percent done,
    iteration, dirty rate and transfer rate (bytes/s) and an ETA in
    seconds (None while memory is dirtied faster than it is sent)."""
    stats = stats or {}

    def get(key):
        return int(stats.get(key, 0) or 0)

    result = {}
    for part in ("memory", "disk", "data"):
        for what in ("total", "processed", "remaining"):
            result[f"{part}_{what}"] = get(f"{part}_{what}")
    total, remaining = result["data_total"], result["data_remaining"]
    result["percent"] = (100 - int(remaining * 100 / total)) if total else 0
    page = get("memory_page_size") or DEFAULT_PAGE_SIZE
    dirty = get("memory_dirty_rate") * page
    rate = get("memory_bps") + get("disk_bps")
    result.update(iteration=get("memory_iteration"), dirty_rate=dirty,
                  transfer_rate=rate, elapsed_ms=get("time_elapsed"))
    if not remaining:
        result["eta"] = 0 if total else None
    elif rate > dirty:
        result["eta"] = round(remaining / (rate - dirty), 1)
    else:
        result["eta"] = None
    return result


def final_progress(running, final):
    """The completed job's figures over the last ones seen while it ran;
    totals and amounts processed keep the larger (an NBD block copy's
    completed statistics say nothing of the disks)."""
    merged = {**running, **final}
    for key, value in running.items():
        if key.endswith(("_total", "_processed")) and \
                isinstance(value, int | float):
            merged[key] = max(value, final.get(key) or 0)
    return merged


# -- the emulator -----------------------------------------------------------

# QEMU 9.0 made its migration bitmap sync re-arm the TCG TLB's not-dirty
# marks (commit 03bfc2188f061, "physmem: Fix migration dirty bitmap
# coherency with TCG memory access").  Before it, a page a TCG guest keeps
# writing through a cached TLB entry after a sync is never sent again.
TCG_DIRTY_TRACKING_FIXED = 9_000_000     # libvirt's encoding of 9.0.0


def emulator_refusal(virt_type, qemu_version, permit=False):
    """Why this host must not live-migrate its guests (one line), or None.
    ``qemu_version`` is libvirt's number (major * 10**6 + minor * 10**3 +
    micro); ``permit`` is [migration] permit_tcg_dirty_page_loss."""
    if virt_type != "qemu" or permit or \
            qemu_version >= TCG_DIRTY_TRACKING_FIXED:
        return None
    major, rest = divmod(int(qemu_version), 1_000_000)
    minor, micro = divmod(rest, 1000)
    return (f"this host's QEMU {major}.{minor}.{micro} loses dirty pages "
            f"when it live-migrates a TCG guest (fixed in QEMU 9.0): the "
            f"guest would arrive with corrupted memory; use KVM or QEMU 9.0 "
            f"or newer here, or a cold migration")
