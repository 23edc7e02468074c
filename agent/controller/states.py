"""Instance and migration states, the status operators see, and which
operation may start from which state.  Pure functions, Nova's vocabulary.
"""
from dataclasses import dataclass

from agent.common.errors import Conflict

# vm_state: what the instance is.
ACTIVE = "active"
BUILDING = "building"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
RESCUED = "rescued"
RESIZED = "resized"
ERROR = "error"
DELETED = "deleted"
SHELVED_OFFLOADED = "shelved_offloaded"     # on no host; its disk an image
VM_STATES = frozenset({ACTIVE, BUILDING, STOPPED, PAUSED, SUSPENDED, RESCUED,
                       RESIZED, ERROR, DELETED, SHELVED_OFFLOADED})

# task_state: what is being done to it (None: nothing).
SCHEDULING = "scheduling"
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
DELETING = "deleting"
REBUILDING = "rebuilding"
REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
REBUILD_SPAWNING = "rebuild_spawning"
MIGRATING = "migrating"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
IMAGE_SNAPSHOT = "image_snapshot"
SHELVING = "shelving"
UNSHELVING = "unshelving"
TASK_STATES = frozenset({
    SCHEDULING, SPAWNING, POWERING_OFF, POWERING_ON, REBOOTING,
    REBOOTING_HARD, DELETING, REBUILDING, REBUILD_BLOCK_DEVICE_MAPPING,
    REBUILD_SPAWNING, MIGRATING, RESIZE_PREP, RESIZE_MIGRATING,
    RESIZE_MIGRATED, RESIZE_FINISH, RESIZE_REVERTING, RESIZE_CONFIRMING,
    RESCUING, UNRESCUING, IMAGE_SNAPSHOT, SHELVING, UNSHELVING})

# power_state: what the hypervisor says (Nova's numbers).
NOSTATE = 0
RUNNING = 1
POWER_PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
POWER_SUSPENDED = 7
POWER_STATE_NAMES = {NOSTATE: "NOSTATE", RUNNING: "Running",
                     POWER_PAUSED: "Paused", SHUTDOWN: "Shutdown",
                     CRASHED: "Crashed", POWER_SUSPENDED: "Suspended"}

# agent.hypervisor.domains state names -> power_state
_NAMED_POWER = {"nostate": NOSTATE, "running": RUNNING, "blocked": RUNNING,
                "paused": POWER_PAUSED, "shutdown": SHUTDOWN,
                "shutoff": SHUTDOWN, "crashed": CRASHED,
                "pmsuspended": POWER_SUSPENDED}


def power_state_from_name(name):
    """Map a domain state name as the agent reports it to a power_state."""
    return _NAMED_POWER.get(name, NOSTATE)


_RESIZING = {t: "RESIZE" for t in (RESIZE_PREP, RESIZE_MIGRATING,
                                   RESIZE_MIGRATED, RESIZE_FINISH)}
_REBUILDING = {t: "REBUILD" for t in (REBUILDING,
                                      REBUILD_BLOCK_DEVICE_MAPPING,
                                      REBUILD_SPAWNING)}
# vm_state -> {task_state: status}, with the status for any other task_state
# under the key None.
_STATUS = {
    ACTIVE: {None: "ACTIVE", REBOOTING: "REBOOT",
             REBOOTING_HARD: "HARD_REBOOT", MIGRATING: "MIGRATING",
             **_RESIZING, **_REBUILDING},
    BUILDING: {None: "BUILD"},
    STOPPED: {None: "SHUTOFF", **_RESIZING, **_REBUILDING},
    RESIZED: {None: "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
    PAUSED: {None: "PAUSED", MIGRATING: "MIGRATING"},
    SUSPENDED: {None: "SUSPENDED"},
    RESCUED: {None: "RESCUE"},
    ERROR: {None: "ERROR", **_REBUILDING},
    DELETED: {None: "DELETED"},
    SHELVED_OFFLOADED: {None: "SHELVED_OFFLOADED"},
}


def status(vm_state, task_state=None):
    """The status shown to operators (Nova's mapping), ``UNKNOWN`` for a
    vm_state drover does not know."""
    by_task = _STATUS.get(vm_state)
    if by_task is None:
        return "UNKNOWN"
    return by_task.get(task_state, by_task[None])


# host_status: how the instance's host is, as Nova shows it.
HOST_UP = "UP"
HOST_DOWN = "DOWN"
HOST_MAINTENANCE = "MAINTENANCE"
HOST_UNKNOWN = "UNKNOWN"
HOST_NONE = ""
POWER_UNKNOWN = "unknown"


def host_status(host_name, host):
    """The host_status of an instance on host ``host_name`` whose store
    record is ``host`` (None: no such host): "" without a host, DOWN
    when the host is down, fenced or set down by the operator (Nova's
    forced_down), MAINTENANCE when it is disabled, UP, and UNKNOWN when
    it cannot be told (never seen, or not in the store)."""
    if not host_name:
        return HOST_NONE
    if host is None:
        return HOST_UNKNOWN
    if host["state"] == "fenced" or host.get("forced_down"):
        return HOST_DOWN
    if host["state"] != "up" and not host["last_seen"]:
        return HOST_UNKNOWN
    if host["state"] == "down":
        return HOST_DOWN
    if not host["enabled"]:
        return HOST_MAINTENANCE
    if host["state"] == "up":
        return HOST_UP
    return HOST_UNKNOWN


def shown_power_state(power_state, host_status_):
    """The power state shown: what libvirt last said, or ``unknown``
    while the host cannot be asked (the store keeps libvirt's word; the
    power-state sync updates it when the host answers again)."""
    if host_status_ in (HOST_DOWN, HOST_UNKNOWN):
        return POWER_UNKNOWN
    return POWER_STATE_NAMES.get(power_state, "NOSTATE")


# Which operation may start from which state: the rules themselves are
# rows of the operations table (agent.controller.ops.OPERATIONS).
ANY = None     # task_states value: any task_state is accepted
IDLE = frozenset({None})


@dataclass(frozen=True)
class Rule:
    vm_states: frozenset
    task_states: frozenset | None    # ANY, or the accepted task_states
    task_state: str | None           # task_state set when it starts


def can_start(rule, vm_state, task_state):
    """True if an operation with ``rule`` may start in these states."""
    return vm_state in rule.vm_states and (
        rule.task_states is ANY or task_state in rule.task_states)


def check_rule(operation, rule, instance, vm_state, task_state):
    """Raise Conflict (one line, Nova's wording) unless ``operation`` (its
    name) with ``rule`` may start; ``instance`` names the instance."""
    if can_start(rule, vm_state, task_state):
        return
    if vm_state not in rule.vm_states:
        where = f"vm_state {vm_state}"
    else:
        where = f"task_state {task_state}"
    raise Conflict(f"Cannot '{operation}' instance {instance} while it is "
                   f"in {where}")


# Migration records.
MIGRATION_TYPES = ("migration", "resize", "live-migration", "evacuation")
MIG_PRE_MIGRATING = "pre-migrating"
MIG_QUEUED = "queued"
MIG_PREPARING = "preparing"
MIG_RUNNING = "running"
MIG_MIGRATING = "migrating"
MIG_POST_MIGRATING = "post-migrating"
MIG_FINISHED = "finished"          # cold: waiting for confirm or revert
MIG_CONFIRMING = "confirming"
MIG_REVERTING = "reverting"
MIG_CONFIRMED = "confirmed"
MIG_REVERTED = "reverted"
MIG_COMPLETED = "completed"        # live migration done; evacuation
                                   # done and its failed host cleaned
MIG_DONE = "done"                  # evacuated, the failed host not yet
                                   # cleaned: still holds its claim there
MIG_ACCEPTED = "accepted"          # evacuation accepted
MIG_CANCELLED = "cancelled"
MIG_ERROR = "error"
MIG_FAILED = "failed"
MIGRATION_FINAL = frozenset({MIG_CONFIRMED, MIG_REVERTED, MIG_COMPLETED,
                             MIG_CANCELLED, MIG_ERROR, MIG_FAILED})
MIGRATION_STATUSES = MIGRATION_FINAL | {
    MIG_PRE_MIGRATING, MIG_QUEUED, MIG_PREPARING, MIG_RUNNING, MIG_MIGRATING,
    MIG_POST_MIGRATING, MIG_FINISHED, MIG_CONFIRMING, MIG_REVERTING,
    MIG_ACCEPTED, MIG_DONE}


def migration_in_progress(migration_status):
    """True while a migration still holds resources on its hosts
    (``finished`` counts: it waits for confirm or revert)."""
    return migration_status not in MIGRATION_FINAL
