"""Live-migration policy: flags, parameters, downtime steps, timeouts,
the monitor's decisions and progress (pure functions, no mocks)."""
import types

import libvirt
import pytest

from agent.common.errors import InvalidInput
from agent.host.migration import policy

BASE = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
ACTIVE = {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED}
GiB = 1024 ** 3


# -- flags ------------------------------------------------------------------

def test_shared_storage_we_checked_gets_unsafe_and_no_disk_copy():
    flags = policy.migration_flags(block_migration=False,
                                   shared_storage_checked=True)
    assert flags == BASE | libvirt.VIR_MIGRATE_UNSAFE


def test_unchecked_storage_never_gets_unsafe():
    flags = policy.migration_flags(block_migration=False,
                                   shared_storage_checked=False)
    assert flags == BASE
    assert not flags & libvirt.VIR_MIGRATE_UNSAFE


def test_block_migration_copies_the_top_layer_only():
    flags = policy.migration_flags(block_migration=True,
                                   shared_storage_checked=False)
    assert flags == BASE | libvirt.VIR_MIGRATE_NON_SHARED_INC
    assert not flags & libvirt.VIR_MIGRATE_NON_SHARED_DISK
    assert not flags & libvirt.VIR_MIGRATE_UNSAFE


def test_block_migration_onto_shared_storage_is_refused():
    with pytest.raises(InvalidInput, match="onto themselves"):
        policy.migration_flags(block_migration=True,
                               shared_storage_checked=True)


def test_auto_converge_and_post_copy_only_where_permitted():
    auto = policy.migration_flags(False, True, permit_auto_converge=True)
    assert auto & libvirt.VIR_MIGRATE_AUTO_CONVERGE
    assert not auto & libvirt.VIR_MIGRATE_POSTCOPY
    post = policy.migration_flags(False, True, permit_post_copy=True)
    assert post & libvirt.VIR_MIGRATE_POSTCOPY
    both = policy.migration_flags(False, True, permit_auto_converge=True,
                                  permit_post_copy=True)
    assert both & libvirt.VIR_MIGRATE_POSTCOPY
    assert not both & libvirt.VIR_MIGRATE_AUTO_CONVERGE


# -- parameters -------------------------------------------------------------

def test_params_name_the_migration_address_and_disks():
    params = policy.migration_params("198.18.64.12", bandwidth=100,
                                     migrate_disks=["vda", "vdb"],
                                     dest_name="instance-1")
    assert params == {"migrate_uri": "tcp://198.18.64.12",
                      "bandwidth": 100,
                      "migrate_disks": ["vda", "vdb"],
                      "destination_name": "instance-1"}


def test_unlimited_bandwidth_and_no_disks_are_left_out():
    assert policy.migration_params("198.18.64.12") == {
        "migrate_uri": "tcp://198.18.64.12"}


def test_ipv6_address_and_port_in_migration_uri():
    assert policy.migration_uri("fd00::2", 49152) == "tcp://[fd00::2]:49152"
    assert policy.migration_uri("host-2.example") == "tcp://host-2.example"


@pytest.mark.parametrize("address", ["", "a b", "x;rm -rf /", "-h", "a..b"])
def test_bad_migration_address_is_refused(address):
    with pytest.raises(InvalidInput):
        policy.migration_params(address)


@pytest.mark.parametrize("kwargs", [{"migrate_disks": ["../etc"]},
                                    {"bandwidth": -1},
                                    {"dest_name": "bad name"}])
def test_bad_params_are_refused(kwargs):
    with pytest.raises(InvalidInput):
        policy.migration_params("198.18.64.12", **kwargs)


# -- downtime steps and timeouts ---------------------------------------------

def test_downtime_steps_like_nova():
    # Nova, 500 ms over 10 steps, 75 s/GiB, 3 GiB: 50 ms at 0 s ... 500 ms
    # at 2250 s, 225 s apart.
    steps = policy.downtime_steps(500, 10, 75, 3)
    assert len(steps) == 11
    assert steps[0] == (0, 50)
    assert steps[1] == (225, 95)
    assert steps[-1] == (2250, 500)
    assert [ms for _, ms in steps] == sorted(ms for _, ms in steps)


def test_downtime_steps_from_a_configured_base():
    assert policy.downtime_steps(400, 3, 2, 1, base_ms=100) == [
        (0, 100), (2, 200), (4, 300), (6, 400)]


def test_bigger_guests_wait_longer_between_steps():
    small = policy.downtime_steps(500, 10, 75, policy.data_gb(GiB))
    big = policy.downtime_steps(500, 10, 75, policy.data_gb(16 * GiB))
    assert big[1][0] == 8 * small[1][0]


def test_bad_downtime_settings_are_refused():
    with pytest.raises(InvalidInput):
        policy.downtime_steps(500, 0, 75, 2)


def test_data_gb_counts_small_guests_as_two_gib_plus_copied_disks():
    assert policy.data_gb(256 * 1024 ** 2) == 2
    assert policy.data_gb(4 * GiB, disk_bytes=GiB // 2) == 4.5


def test_completion_timeout_grows_with_size_and_zero_is_none():
    assert policy.completion_timeout(800, 3) == 2400
    assert policy.completion_timeout(0, 3) == 0


def _opts(**kw):
    values = dict(downtime=50, downtime_max=500, downtime_steps=10,
                  downtime_delay=75, completion_timeout=800,
                  timeout_action="abort")
    values.update(kw)
    return types.SimpleNamespace(**values)


def test_plan_from_options():
    flags = policy.migration_flags(False, True, permit_post_copy=True)
    plan = policy.make_plan(flags, 2, _opts())
    assert plan.steps[0] == (0, 50) and plan.steps[-1] == (1500, 500)
    assert plan.timeout == 1600
    assert plan.post_copy


def test_unknown_timeout_action_is_refused():
    with pytest.raises(InvalidInput, match="timeout action"):
        policy.make_plan(0, 2,
                         _opts(timeout_action="explode"))


# -- decisions --------------------------------------------------------------

PLAN = policy.Plan(steps=((0, 50), (10, 100), (20, 150)), timeout=60)


def _run(times, plan=PLAN, state=None, stats=ACTIVE):
    """Actions of successive polls at ``times``."""
    state = state or policy.State()
    actions = []
    for t in times:
        action, state = policy.decide(stats, t, plan, state)
        actions.append(action)
    return actions, state


def test_downtime_steps_are_applied_once_each_when_due():
    actions, _ = _run([0, 5, 10, 11, 20, 30])
    assert [a.downtime_ms for a in actions] == [50, None, 100, None, 150,
                                                None]


def test_late_poll_jumps_to_the_latest_due_step():
    actions, state = _run([25])
    assert actions[0] == policy.Action(policy.SET_DOWNTIME, downtime_ms=150)
    assert state.step == 2


def test_nothing_happens_before_libvirt_has_a_job():
    none = {"type": libvirt.VIR_DOMAIN_JOB_NONE}
    actions, state = _run([0, 100], stats=none)
    assert all(a.kind == policy.NOTHING for a in actions)
    assert state == policy.State()


def test_timeout_aborts_once():
    actions, state = _run([0, 60, 61])
    assert actions[1].kind == policy.ABORT_JOB
    assert "timeout of 60 s" in actions[1].reason
    assert actions[2].kind == policy.NOTHING
    assert state.aborting and state.timed_out


def test_no_timeout_when_zero():
    plan = policy.Plan(steps=((0, 50),), timeout=0)
    actions, _ = _run([0, 10 ** 6], plan=plan)
    assert actions[1].kind == policy.NOTHING


def test_timeout_force_completes_with_post_copy_when_permitted():
    plan = policy.Plan(steps=((0, 50),), timeout=60,
                       timeout_action=policy.FORCE_COMPLETE, post_copy=True)
    actions, state = _run([0, 60, 70], plan=plan)
    assert actions[1].kind == policy.START_POST_COPY
    assert actions[2].kind == policy.NOTHING
    assert state.forced == policy.START_POST_COPY


def test_timeout_force_complete_pauses_without_post_copy():
    plan = policy.Plan(steps=((0, 50), (100, 500)), timeout=60,
                       timeout_action=policy.FORCE_COMPLETE)
    actions, _ = _run([0, 60, 100], plan=plan)
    assert actions[1].kind == policy.PAUSE
    assert actions[2].kind == policy.NOTHING     # no steps once paused


def test_operator_abort_comes_first():
    state = policy.State(abort_requested=True, force_requested=True)
    actions, state = _run([60], state=state)
    assert actions[0] == policy.Action(policy.ABORT_JOB,
                                       reason=policy.OPERATOR_ABORT)
    assert state.aborting


def test_operator_abort_is_not_tried_in_post_copy():
    state = policy.State(abort_requested=True,
                         forced=policy.START_POST_COPY)
    actions, _ = _run([5], state=state)
    assert actions[0].kind == policy.NOTHING


def test_operator_force_complete():
    plan = policy.Plan(steps=((0, 50),), post_copy=True)
    state = policy.State(step=0, force_requested=True)
    actions, state = _run([1, 2], plan=plan, state=state)
    assert [a.kind for a in actions] == [policy.START_POST_COPY,
                                         policy.NOTHING]


# -- progress ---------------------------------------------------------------

def test_progress_from_job_stats():
    stats = {"type": 2, "time_elapsed": 1500,
             "data_total": 1000 * 2 ** 20, "data_processed": 700 * 2 ** 20,
             "data_remaining": 250 * 2 ** 20,
             "memory_total": 1000 * 2 ** 20,
             "memory_processed": 700 * 2 ** 20,
             "memory_remaining": 250 * 2 ** 20,
             "memory_bps": 100 * 2 ** 20, "memory_dirty_rate": 6400,
             "memory_page_size": 4096, "memory_iteration": 3}
    p = policy.progress(stats)
    assert p["percent"] == 75
    assert p["memory_remaining"] == 250 * 2 ** 20
    assert p["disk_total"] == 0
    assert p["dirty_rate"] == 25 * 2 ** 20
    assert p["iteration"] == 3
    assert p["eta"] == pytest.approx(250 / 75, abs=0.1)


def test_no_eta_while_memory_is_dirtied_faster_than_sent():
    p = policy.progress({"data_total": 100, "data_remaining": 50,
                         "memory_bps": 4096, "memory_dirty_rate": 2})
    assert p["eta"] is None


def test_progress_of_nothing():
    p = policy.progress({})
    assert p["percent"] == 0 and p["eta"] is None


def test_final_progress_keeps_what_completed_stats_leave_out():
    running = {"disk_total": 1 << 30, "disk_processed": 1 << 29,
               "memory_total": 256, "memory_remaining": 10, "iteration": 3}
    final = {"disk_total": 0, "memory_total": 256, "memory_remaining": 0,
             "memory_processed": 300, "iteration": 4}
    merged = policy.final_progress(running, final)
    assert merged["disk_total"] == 1 << 30
    assert merged["disk_processed"] == 1 << 29
    assert merged["memory_remaining"] == 0 and merged["iteration"] == 4
    assert merged["memory_processed"] == 300
