"""Instance states: the status operators see and which operation may start
from which state."""
import pytest

from agent.controller.ops import OPERATIONS, WORKFLOWS

from agent.common.errors import Conflict
from agent.controller import states as s


@pytest.mark.parametrize("vm_state,task_state,status", [
    (s.BUILDING, s.SCHEDULING, "BUILD"),
    (s.ACTIVE, None, "ACTIVE"),
    (s.STOPPED, None, "SHUTOFF"),
    (s.ACTIVE, s.RESIZE_PREP, "RESIZE"),
    (s.STOPPED, s.RESIZE_MIGRATING, "RESIZE"),
    (s.ACTIVE, s.RESIZE_FINISH, "RESIZE"),
    (s.RESIZED, None, "VERIFY_RESIZE"),
    (s.RESIZED, s.RESIZE_REVERTING, "REVERT_RESIZE"),
    (s.RESIZED, s.RESIZE_CONFIRMING, "VERIFY_RESIZE"),
    (s.ACTIVE, s.MIGRATING, "MIGRATING"),
    (s.PAUSED, s.MIGRATING, "MIGRATING"),
    (s.RESCUED, None, "RESCUE"),
    (s.ACTIVE, s.REBUILDING, "REBUILD"),
    (s.ERROR, s.REBUILD_SPAWNING, "REBUILD"),
    (s.ERROR, None, "ERROR"),
    (s.ACTIVE, s.POWERING_OFF, "ACTIVE"),
    (s.DELETED, None, "DELETED"),
    ("weird", None, "UNKNOWN"),
])
def test_status_follows_novas_mapping(vm_state, task_state, status):
    assert s.status(vm_state, task_state) == status


@pytest.mark.parametrize("op,vm_state,task_state,ok", [
    ("migrate", s.ACTIVE, None, True),
    ("migrate", s.STOPPED, None, True),
    ("migrate", s.ACTIVE, s.MIGRATING, False),
    ("migrate", s.RESIZED, None, False),
    ("live-migrate", s.ACTIVE, None, True),
    ("live-migrate", s.STOPPED, None, False),
    ("resize-confirm", s.RESIZED, None, True),
    ("resize-revert", s.ACTIVE, None, False),
    ("delete", s.RESIZED, s.RESIZE_MIGRATING, True),
    ("delete", s.DELETED, None, False),
    ("start", s.STOPPED, None, True),
    ("start", s.ACTIVE, None, False),
])
def test_which_operation_may_start(op, vm_state, task_state, ok):
    assert s.can_start(OPERATIONS[op].rule, vm_state, task_state) is ok


def test_refusal_names_the_blocking_state():
    live, migrate = OPERATIONS["live-migrate"].rule, OPERATIONS["migrate"].rule
    with pytest.raises(Conflict, match="Cannot 'live-migrate' instance vm1 "
                                       "while it is in vm_state stopped"):
        s.check_rule("live-migrate", live, "vm1", s.STOPPED, None)
    with pytest.raises(Conflict, match="in task_state resize_prep"):
        s.check_rule("migrate", migrate, "vm1", s.ACTIVE, s.RESIZE_PREP)
    s.check_rule("migrate", migrate, "vm1", s.ACTIVE, None)


def test_the_table_joins_rules_and_workflows():
    """Every instance operation sets a known task_state; every row's
    workflow builds; every task kind the engine runs has a row."""
    for op in OPERATIONS.values():
        if op.rule is not None:
            assert op.rule.task_state in s.TASK_STATES
            assert op.rule.vm_states <= s.VM_STATES
        assert op.workflow({"uuid": "x", "host": "h"}).steps
    assert set(WORKFLOWS) == {op.kind for op in OPERATIONS.values()}


def test_power_state_from_the_agents_state_names():
    """The names agent.hypervisor.domains gives libvirt's states."""
    from agent.hypervisor.domains import POWER_STATES
    assert s.power_state_from_name(POWER_STATES[1]) == s.RUNNING
    assert s.power_state_from_name(POWER_STATES[5]) == s.SHUTDOWN
    assert s.power_state_from_name(POWER_STATES[3]) == s.POWER_PAUSED
    assert s.power_state_from_name("bogus") == s.NOSTATE
    assert {s.power_state_from_name(n) for n in POWER_STATES.values()} \
        <= set(s.POWER_STATE_NAMES)


def test_finished_cold_migration_still_holds_resources():
    assert s.migration_in_progress(s.MIG_FINISHED)
    assert not s.migration_in_progress(s.MIG_CONFIRMED)
    assert not s.migration_in_progress(s.MIG_ERROR)
