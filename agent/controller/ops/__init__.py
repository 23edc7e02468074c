"""Every operation the controller runs: one table that joins what
operators ask for (the action name), the state rule that lets it start,
the check made before anything is written, and the workflow the task
engine runs (by task kind).

Rules: the vm_states it may start from, the task_states accepted (IDLE:
none in flight; ANY), and the task_state it sets.  ``rule=None`` marks a
host or fleet operation (drain, rebalance).  agent.controller.admission is
the one path through this table.
"""
from collections.abc import Callable
from dataclasses import dataclass

from agent.controller import fencing
from agent.controller import states as st
from agent.controller.ops import (boot, cold_migrate, delete, drain,
                                  evacuate, ha_relocate, ha_restart,
                                  host_evacuate, live_migrate, power,
                                  rebalance, recover_host, rescue,
                                  resize_confirm, resize_revert, shelve,
                                  snapshot, unrescue, unshelve)
from agent.controller.states import ANY, IDLE, Rule


@dataclass(frozen=True)
class Operation:
    name: str                   # the instance action (server event list)
    kind: str                   # the task kind
    workflow: Callable          # params -> Workflow
    rule: Rule | None           # None: a host operation
    # (services, instance or host record, params) -> params; raises
    # InvalidInput / Conflict for what can be refused up front.
    precheck: Callable | None = None


def _rule(vm_states, task_states, task_state):
    return Rule(frozenset(vm_states), task_states, task_state)


_TABLE = (
    Operation("create", "boot", boot.workflow,
              _rule({st.BUILDING}, frozenset({st.SCHEDULING}),
                    st.SCHEDULING)),
    Operation("delete", "delete", delete.workflow,
              _rule(st.VM_STATES - {st.DELETED}, ANY, st.DELETING),
              delete.precheck),
    # Not while RESCUED: stop, start and reboot would run the rescue
    # domain as the instance (unrescue first).
    Operation("stop", "stop", power.stop_workflow,
              _rule({st.ACTIVE, st.ERROR}, IDLE, st.POWERING_OFF)),
    Operation("start", "start", power.start_workflow,
              _rule({st.STOPPED}, IDLE, st.POWERING_ON)),
    Operation("reboot", "reboot", power.reboot_workflow,
              _rule({st.ACTIVE, st.STOPPED, st.PAUSED, st.SUSPENDED,
                     st.ERROR}, IDLE, st.REBOOTING_HARD)),
    # RESCUED is in no move's vm_states: migrations and resize are
    # refused while rescued.
    Operation("rescue", rescue.KIND, rescue.workflow,
              _rule(rescue.RESCUABLE, IDLE, st.RESCUING), rescue.precheck),
    Operation("unrescue", unrescue.KIND, unrescue.workflow,
              _rule({st.RESCUED}, IDLE, st.UNRESCUING)),
    Operation("migrate", "cold_migrate", cold_migrate.workflow,
              _rule({st.ACTIVE, st.STOPPED}, IDLE, st.RESIZE_PREP),
              cold_migrate.precheck_migrate),
    Operation("resize", "resize", cold_migrate.workflow,
              _rule({st.ACTIVE, st.STOPPED}, IDLE, st.RESIZE_PREP),
              cold_migrate.precheck_resize),
    Operation("resize-confirm", "resize_confirm", resize_confirm.workflow,
              _rule({st.RESIZED}, IDLE, st.RESIZE_CONFIRMING),
              resize_confirm.precheck),
    Operation("resize-revert", "resize_revert", resize_revert.workflow,
              _rule({st.RESIZED}, IDLE, st.RESIZE_REVERTING),
              resize_revert.precheck),
    Operation("live-migrate", "live_migrate", live_migrate.workflow,
              _rule({st.ACTIVE, st.PAUSED}, IDLE, st.MIGRATING),
              live_migrate.precheck),
    # Not from RESCUED (rescue's rule): the disk in use is the rescue's.
    Operation("image-create", "snapshot", snapshot.workflow,
              _rule({st.ACTIVE, st.STOPPED}, IDLE, st.IMAGE_SNAPSHOT),
              snapshot.precheck),
    Operation("shelve", "shelve", shelve.workflow,
              _rule({st.ACTIVE, st.STOPPED}, IDLE, st.SHELVING),
              shelve.precheck),
    Operation("unshelve", "unshelve", unshelve.workflow,
              _rule({st.SHELVED_OFFLOADED}, IDLE, st.UNSHELVING),
              unshelve.precheck),
    Operation("drain", drain.KIND, drain.workflow, None, drain.precheck),
    Operation("fence", fencing.KIND, fencing.workflow, None,
              fencing.precheck),
    # Any task_state: an evacuation supersedes what was in flight on the
    # failed host (admission supersede=True).
    Operation("evacuate", evacuate.KIND, evacuate.workflow,
              _rule(evacuate.EVACUABLE, ANY, st.REBUILDING),
              evacuate.precheck),
    Operation("host-evacuate", host_evacuate.KIND, host_evacuate.workflow,
              None, host_evacuate.precheck),
    # A fleet operation (admission.submit_fleet): its live migrations are
    # instance operations of their own.
    Operation("rebalance", rebalance.KIND, rebalance.workflow, None,
              rebalance.precheck),
    # Automatic recovery (agent.controller.recovery starts these): a
    # failed host fenced then its HA instances evacuated; an HA guest found
    # down restarted where it is, or relocated by a cold migration.
    Operation("recover-host", recover_host.KIND, recover_host.workflow,
              None),
    Operation("ha-restart", ha_restart.KIND, ha_restart.workflow,
              _rule({st.ACTIVE}, IDLE, st.POWERING_ON)),
    Operation("ha-relocate", ha_relocate.KIND, ha_relocate.workflow,
              _rule({st.ACTIVE}, IDLE, st.RESIZE_PREP),
              cold_migrate.precheck_migrate),
)

OPERATIONS = {op.name: op for op in _TABLE}
# What the task engine runs, by task kind.
WORKFLOWS = {op.kind: op.workflow for op in _TABLE}
