"""Automatic rebalancing waits for its hold time and never flaps."""
import types

from agent.controller.auto_rebalance import Rebalancer, hold
from agent.controller.rebalance_plan import Plan


def test_hold_counts_imbalanced_rounds_and_resets():
    v = hold(0, 0.4, 0.1, 2, 3)
    assert (v.rounds, v.act) == (1, False)
    v = hold(v.rounds, 0.4, 0.1, 2, 3)
    assert (v.rounds, v.act) == (2, False)
    v = hold(v.rounds, 0.4, 0.1, 2, 3)
    assert (v.rounds, v.act) == (0, True)
    # A balanced round, or one without a useful move, starts over.
    assert hold(2, 0.05, 0.1, 2, 3).rounds == 0
    assert hold(2, 0.4, 0.1, 0, 3).rounds == 0


class FakeAdmission:
    def __init__(self):
        self.submitted = []

    def submit_fleet(self, op, **params):
        self.submitted.append((op, params))
        return len(self.submitted)


def _svc(tasks=()):
    store = types.SimpleNamespace(list_tasks=lambda unfinished: list(tasks))
    return types.SimpleNamespace(store=store, admission=FakeAdmission())


def _conf(hold_rounds=3):
    return types.SimpleNamespace(rebalance=types.SimpleNamespace(
        metric="cpu", threshold=0.1, max_moves=2, max_parallel=1,
        hold_rounds=hold_rounds, interval=5))


def _plan(scores):
    """A plan function that returns the next score of ``scores``, with a
    move whenever it is above the threshold."""
    it = iter(scores)

    def plan(svc, metric, threshold, max_moves):
        s = next(it)
        return Plan(metric, s, 0.0, {}, {}, ("move",) if s > 0.1 else (),
                    "")
    return plan


def test_nothing_moves_before_the_hold_time():
    svc = _svc()
    r = Rebalancer(svc, _conf(3), plan=_plan([0.5, 0.5]))
    r.round()
    r.round()
    assert svc.admission.submitted == []
    r.plan = _plan([0.5])
    r.round()
    assert [op for op, _ in svc.admission.submitted] == ["rebalance"]


def test_a_burst_of_load_moves_nothing():
    svc = _svc()
    r = Rebalancer(svc, _conf(3), plan=_plan([0.5, 0.5, 0.05, 0.5, 0.5,
                                               0.05]))
    for _ in range(6):
        r.round()
    assert svc.admission.submitted == []


def test_acting_starts_the_count_again_no_flapping():
    svc = _svc()
    r = Rebalancer(svc, _conf(2), plan=_plan([0.5] * 5))
    for _ in range(5):
        r.round()
    # Rounds 2 and 4 act; 1, 3, 5 hold.
    assert len(svc.admission.submitted) == 2


def test_a_running_rebalance_task_holds_the_round():
    svc = _svc(tasks=[{"id": 7, "kind": "rebalance"}])
    r = Rebalancer(svc, _conf(1), plan=_plan([0.5]))
    assert "task 7 running" in r.round().reason
    assert svc.admission.submitted == []


def test_status_says_what_the_last_round_decided():
    from agent.controller.api.fleet import fleet_rebalance_status
    svc = _svc()
    assert fleet_rebalance_status(types.SimpleNamespace(rebalancer=None))[
        "enabled"] is False
    svc.rebalancer = r = Rebalancer(svc, _conf(2), plan=_plan([0.5, 0.5]))
    assert fleet_rebalance_status(svc)["last_reason"] == "no round yet"
    r.round()
    status = fleet_rebalance_status(svc)
    assert (status["rounds"], status["last_acted"]) == (1, False)
    assert "holding" in status["last_reason"]
    assert status["last_task_id"] is None
    r.round()
    status = fleet_rebalance_status(svc)
    assert status["last_acted"] and status["last_task_id"] == 1
    assert status["rounds"] == 0


def test_a_refused_start_is_said_and_not_counted_as_acting():
    svc = _svc()

    def refuse(op, **params):
        from agent.common.errors import Conflict
        raise Conflict("a migration of rb-1 is running")
    svc.admission.submit_fleet = refuse
    r = Rebalancer(svc, _conf(1), plan=_plan([0.5]))
    verdict = r.round()
    assert not verdict.act
    assert "not started: a migration of rb-1 is running" in verdict.reason
