"""The migration prediction: the pure model (pre-copy rounds as a
geometric series, the downtime steps, auto-converge, post-copy and the
completion timeout), the [migration] policy it models, and its use by
``server migrate --live-migration --dry-run``, the migration record and
``host drain --dry-run`` on the simulated fleet."""
import pytest

from agent.common import migration_schedule
from agent.common.errors import InvalidInput
from agent.controller import prediction
from agent.controller.api import live as live_api
from agent.controller.api import migrations as mig_api
from agent.controller.prediction import predict, policy_kwargs
from sim_helpers import SimLab

MiB = 1 << 20
GiB = 1 << 30
POLICY = {"downtime": 50, "downtime_max": 500, "downtime_steps": 10,
          "downtime_delay": 75, "completion_timeout": 800,
          "timeout_action": "abort", "permit_auto_converge": False,
          "permit_post_copy": False, "bandwidth": 0,
          "monitor_interval": 0.5}


def test_idle_guest_is_one_round_at_the_bandwidth():
    p = predict(GiB, 0, 100 * MiB, max_downtime_s=0.05, setup_s=0.5)
    assert p.verdict == prediction.PRECOPY
    assert p.rounds == 1
    assert p.duration_s == pytest.approx(0.5 + 1024 / 100)
    assert p.downtime_s == 0


def test_rounds_are_the_geometric_series_until_the_rest_fits_the_downtime():
    # r = 1/2: rounds of 1024, 512, ... MiB until one is <= 5 MiB
    # (0.05 s at 100 MiB/s): 4 MiB after 8 rounds.
    p = predict(GiB, 50 * MiB, 100 * MiB, max_downtime_s=0.05)
    assert p.verdict == prediction.PRECOPY
    assert p.rounds == 8
    sent = sum(1024 * 0.5 ** k for k in range(8))
    assert p.duration_s == pytest.approx(sent / 100 + 4 / 100, abs=1e-3)
    assert p.downtime_s == pytest.approx(0.04, abs=1e-3)


def test_only_the_non_zero_memory_costs_bandwidth():
    whole = predict(GiB, 10 * MiB, 100 * MiB)
    quarter = predict(GiB, 10 * MiB, 100 * MiB, resident_bytes=GiB // 4)
    assert quarter.duration_s == pytest.approx(whole.duration_s / 4, rel=0.1)


def test_working_set_bounds_what_a_round_leaves():
    # 24 MiB/s against 32 MiB/s rewriting the same 24 MiB: much shorter
    # than a guest dirtying fresh pages at that rate.
    fresh = predict(96 * MiB, 24 * MiB, 32 * MiB, max_downtime_s=0.05)
    same = predict(96 * MiB, 24 * MiB, 32 * MiB, max_downtime_s=0.05,
                   working_set_bytes=24 * MiB)
    assert same.verdict == fresh.verdict == prediction.PRECOPY
    assert same.duration_s < fresh.duration_s * 0.7


def test_a_guest_dirtying_faster_than_the_bandwidth_times_out():
    p = predict(GiB, 200 * MiB, 100 * MiB, max_downtime_s=0.05,
                completion_timeout_s=60)
    assert p.verdict == prediction.TIMEOUT
    assert p.duration_s == 60
    assert p.downtime_s is None         # aborted: it never switched over
    assert "aborted" in p.reason


def test_force_complete_switches_to_post_copy_when_permitted():
    p = predict(GiB, 200 * MiB, 100 * MiB, max_downtime_s=0.05,
                completion_timeout_s=60, permit_post_copy=True,
                timeout_action="force_complete", switchover_s=0.02)
    assert p.verdict == prediction.POST_COPY
    assert 60 < p.duration_s <= 60 + 1024 / 100 + 0.02 + 1e-9
    assert p.downtime_s == pytest.approx(0.02)


def test_force_complete_without_post_copy_pauses_the_guest():
    p = predict(GiB, 200 * MiB, 100 * MiB, max_downtime_s=0.05,
                completion_timeout_s=60, timeout_action="force_complete")
    assert p.verdict == prediction.TIMEOUT
    assert "paused" in p.reason
    assert p.downtime_s > 1           # the whole remainder, paused


def test_auto_converge_throttles_the_guest_until_it_converges():
    plain = predict(256 * MiB, 64 * MiB, 32 * MiB, max_downtime_s=0.05,
                    completion_timeout_s=120)
    throttled = predict(256 * MiB, 64 * MiB, 32 * MiB, max_downtime_s=0.05,
                        completion_timeout_s=120, permit_auto_converge=True)
    assert plain.verdict == prediction.TIMEOUT
    assert throttled.verdict == prediction.AUTO_CONVERGE
    assert throttled.duration_s < 120
    assert "throttled" in throttled.reason


def test_post_copy_permitted_means_no_auto_converge():
    # As migration_flags: POSTCOPY is set instead of AUTO_CONVERGE.
    p = predict(256 * MiB, 64 * MiB, 32 * MiB, max_downtime_s=0.05,
                completion_timeout_s=120, permit_auto_converge=True,
                permit_post_copy=True)
    assert p.verdict == prediction.TIMEOUT


def test_a_later_downtime_step_lets_a_steady_remainder_converge():
    # The rounds stay at the 20 MiB working set (0.2 s at 100 MiB/s):
    # only the step of 0.25 s at 20 s lets it switch over.
    p = predict(GiB, 200 * MiB, 100 * MiB, working_set_bytes=20 * MiB,
                downtime_schedule=((0, 0.05), (10, 0.1), (20, 0.25)),
                completion_timeout_s=100)
    assert p.verdict == prediction.PRECOPY
    assert 20 <= p.duration_s < 21
    assert p.downtime_s == pytest.approx(0.2)


def test_no_timeout_and_no_convergence_never_ends():
    p = predict(GiB, 200 * MiB, 100 * MiB, max_downtime_s=0.05)
    assert p.verdict == prediction.TIMEOUT
    assert p.duration_s is None
    assert "never" in p.reason


def test_block_migration_copies_the_disk_first():
    memory_only = predict(GiB, 0, 100 * MiB)
    block = predict(GiB, 0, 100 * MiB, disk_bytes=2 * GiB)
    assert block.duration_s == pytest.approx(memory_only.duration_s + 20.48)


@pytest.mark.parametrize("dirty", [0, 10, 40, 80, 99])
def test_more_bandwidth_is_never_slower(dirty):
    slow = predict(GiB, dirty * MiB, 100 * MiB, max_downtime_s=0.05,
                   completion_timeout_s=1000)
    fast = predict(GiB, dirty * MiB, 200 * MiB, max_downtime_s=0.05,
                   completion_timeout_s=1000)
    assert fast.duration_s <= slow.duration_s


@pytest.mark.parametrize("args", [
    dict(memory_bytes=0, dirty_bytes_per_s=0, bandwidth_bytes_per_s=1),
    dict(memory_bytes=1, dirty_bytes_per_s=-1, bandwidth_bytes_per_s=1),
    dict(memory_bytes=1, dirty_bytes_per_s=0, bandwidth_bytes_per_s=0),
    dict(memory_bytes=1, dirty_bytes_per_s=0, bandwidth_bytes_per_s=1,
         timeout_action="explode")])
def test_bad_inputs_are_refused(args):
    with pytest.raises(InvalidInput):
        predict(**args)


def test_policy_kwargs_model_the_monitors_steps_and_timeout():
    kw = policy_kwargs(POLICY, 256 * MiB)
    # Guest RAM counts as 2 GiB, like the agent's plan.
    gb = migration_schedule.data_gb(256 * MiB)
    assert kw["completion_timeout_s"] == 800 * gb
    steps = migration_schedule.downtime_steps(500, 10, 75, gb, base_ms=50)
    schedule = dict(kw["downtime_schedule"])
    # QEMU's own 300 ms until the monitor's first poll sets step 0.
    assert schedule[0.0] == prediction.QEMU_DEFAULT_DOWNTIME_S
    assert schedule[0.5] == steps[0][1] / 1000
    assert schedule[steps[3][0]] == steps[3][1] / 1000
    assert len(schedule) == len(steps) + 1


def test_policy_kwargs_follow_the_policy_switches():
    kw = policy_kwargs(dict(POLICY, permit_post_copy=True,
                            timeout_action="force_complete",
                            completion_timeout=0), GiB)
    assert kw["permit_post_copy"] and kw["timeout_action"] == \
        "force_complete"
    assert kw["completion_timeout_s"] == 0


# -- on the simulated fleet ---------------------------------------------------

@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    assert lab.boot("vm1", host="h1", storage="shared")["state"] == "done"
    yield lab
    lab.close()


def test_dry_run_predicts_and_changes_nothing(lab):
    before = (lab.migrations(), lab.claims(), lab.domains())
    row = mig_api.server_migrate(lab.svc, "vm1", live=True, dry_run=True)
    assert row["Destination"] == "h2"
    assert row["Verdict"] == prediction.PRECOPY
    assert row["Duration s"] > 0
    assert "assumed" in row["Bandwidth MiB/s"]
    assert (lab.migrations(), lab.claims(), lab.domains()) == before


def test_dry_run_uses_the_sources_bandwidth_limit_and_policy(lab):
    agent = lab.fleet.agents["h1"]
    agent.policy = dict(agent.policy, bandwidth=8, completion_timeout=1)
    agent.dirty_bytes_per_s = 64 * MiB
    row = mig_api.server_migrate(lab.svc, "vm1", live=True, dry_run=True,
                                 host="h2")
    assert row["Bandwidth MiB/s"] == "8 (configured)"
    assert row["Verdict"] == prediction.TIMEOUT


def test_dry_run_goes_with_live_migration(lab):
    with pytest.raises(InvalidInput):
        mig_api.server_migrate(lab.svc, "vm1", dry_run=True)


def test_migration_started_with_predict_keeps_its_prediction(lab):
    task = lab.op("live", "vm1", host="h2", predict=True)
    assert task["state"] == "done"
    mig = mig_api.migration_show(lab.svc, "vm1")
    assert mig["status"] == "completed"
    assert mig["prediction"]["verdict"] == prediction.PRECOPY
    assert mig["prediction"]["destination"] == "h2"
    # The next prediction between the two hosts uses the measured rate.
    lab.svc.store.update_migration(mig["uuid"], progress={
        **mig["progress"], "transfer_rate": 50 * MiB})
    row = mig_api.server_migrate(lab.svc, "vm1", live=True, dry_run=True,
                                 host="h1")
    assert row["Bandwidth MiB/s"] == "100 (assumed)"   # h2 -> h1: none yet


def _past_migration(lab, transfer_mib, **progress):
    """A completed live migration h1 -> h2 that moved at ``transfer_mib``
    MiB/s; ``progress``: what else its record says."""
    mig = lab.store.create_migration(lab.uuid("vm1"), "live-migration",
                                     "h1", dest_host="h2")
    lab.store.update_migration(mig["uuid"], status="completed", progress={
        "percent": 100, "transfer_rate": transfer_mib * MiB, **progress})


def _dry_run(lab):
    return mig_api.server_migrate(lab.svc, "vm1", live=True, dry_run=True,
                                  host="h2")


def test_dry_run_skips_a_rate_measured_under_a_bandwidth_cap(lab):
    # CI's case: a lab test capped the bandwidth at 24 MiB/s, lifted since;
    # the guest dirties faster than that.
    lab.fleet.agents["h1"].dirty_bytes_per_s = 32 * MiB
    _past_migration(lab, 300, bandwidth_limit=0)
    _past_migration(lab, 24, bandwidth_limit=24)
    row = _dry_run(lab)
    assert row["Bandwidth MiB/s"] == "300 (measured)"   # the uncapped one
    assert row["Verdict"] == prediction.PRECOPY


def test_dry_run_assumes_rather_than_use_a_capped_rate(lab):
    _past_migration(lab, 24, bandwidth_limit=24)
    assert _dry_run(lab)["Bandwidth MiB/s"] == "100 (assumed)"


def test_dry_run_skips_a_record_that_does_not_say_its_cap(lab):
    _past_migration(lab, 24)    # recorded before records kept the cap
    assert _dry_run(lab)["Bandwidth MiB/s"] == "100 (assumed)"


def test_migration_without_predict_has_none(lab):
    assert lab.op("live", "vm1", host="h2")["state"] == "done"
    assert mig_api.migration_show(lab.svc, "vm1")["prediction"] is None


def test_drain_dry_run_predicts_each_move_and_changes_nothing(lab):
    assert lab.boot("vm2", host="h1", storage="shared")["state"] == "done"
    before = (lab.migrations(), lab.claims(), lab.store.get_host("h1"))
    rows = live_api.host_drain(lab.svc, "h1", dry_run=True)
    assert sorted(r["Server"] for r in rows) == ["vm1", "vm2"]
    assert {r["Destination"] for r in rows} == {"h2"}
    assert {r["Verdict"] for r in rows} == {prediction.PRECOPY}
    assert (lab.migrations(), lab.claims(), lab.store.get_host("h1")) == \
        before
