"""The rebalance plan of the fleet as the store and the load history
see it, the dry-run API and the one-at-a-time rule of fleet operations."""
import types

import pytest

from agent.common.errors import Conflict, InvalidInput
from agent.controller import rebalance, states
from agent.controller.admission import Admission
from agent.controller.api import fleet as fleet_api
from agent.controller.db import Store, upgrade
from agent.transport.errors import HostUnreachable


class FakeLoad:
    def __init__(self, cpu):
        self.cpu = cpu

    def usage(self, window_s):
        return {u: {"cpu": c, "memory_mb": 100.0}
                for u, c in self.cpu.items()}

    def host_cpu(self, host):
        return None


class FakeEngine:
    def __init__(self):
        self.submitted = []

    def submit(self, kind, params):
        self.submitted.append((kind, params))
        return len(self.submitted)


@pytest.fixture
def svc(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2", "h3"):
        store.upsert_host(name, "198.18.0.2", facts={
            "vcpus": 2, "memory_mb": 8192, "disk_gb": 100})
        store.mark_host_up(name)
    store.create_flavor("tiny", 1, 256, 1)
    store.create_image("img", "/nonexistent", "qcow2", 1 << 20, 1 << 20)
    cpu = {}
    for i in range(3):
        inst = store.create_instance(f"vm{i}", "tiny", "img")
        store.claim("h1", inst["uuid"], 1, 256, 1)
        store.update_instance(inst["uuid"], host="h1",
                              vm_state=states.ACTIVE,
                              power_state=states.RUNNING, task_state=None)
        cpu[inst["uuid"]] = 0.5
    s = types.SimpleNamespace(store=store, load=FakeLoad(cpu),
                              engine=FakeEngine())
    s.admission = Admission(s)
    yield s
    store.close()


def test_plan_from_the_store_and_measured_load(svc):
    plan = rebalance.current_plan(svc, "cpu", threshold=0.01)
    assert {m.destination for m in plan.moves} == {"h2", "h3"}
    assert plan.score_before > plan.score_after


def test_a_busy_or_stopped_guest_is_not_moved(svc):
    for inst in svc.store.list_instances():
        svc.store.update_instance(inst["uuid"], power_state=states.SHUTDOWN)
    plan = rebalance.current_plan(svc, "cpu", threshold=0.0)
    assert plan.moves == ()


def test_dry_run_api_changes_nothing_and_prints_dashes(svc, mocker):
    # A host that cannot be asked for the guest's dirty rate: no
    # prediction, shown as "-", and the plan is still made.
    mocker.patch.object(rebalance.move_prediction, "predict_move",
                        side_effect=HostUnreachable("h1: no answer"))
    before = svc.store.list_allocations()
    out = fleet_api.fleet_rebalance(svc, dry_run=True, threshold=0.01)
    assert out["moves"] and all(m["Predicted Time"] == "-"
                                for m in out["moves"])
    assert svc.store.list_allocations() == before
    assert svc.engine.submitted == []


def test_dry_run_shows_each_moves_prediction(svc, mocker):
    asked = []

    def predict_move(services, inst, dest):
        asked.append((inst["name"], inst["host"], dest))
        return {"duration_s": 6.5, "downtime_s": 0.03, "verdict": "precopy"}
    mocker.patch.object(rebalance.move_prediction, "predict_move",
                        side_effect=predict_move)
    out = fleet_api.fleet_rebalance(svc, dry_run=True, threshold=0.01)
    assert [(m["Server"], m["Source"], m["Destination"])
            for m in out["moves"]] == asked
    assert all(m["Predicted Time"] == "6.5 s"
               and m["Predicted Downtime"] == "30 ms" for m in out["moves"])


def test_bad_parameters_are_refused(svc):
    with pytest.raises(InvalidInput, match="--metric"):
        fleet_api.fleet_rebalance(svc, metric="disk")
    with pytest.raises(InvalidInput, match="--max-moves"):
        fleet_api.fleet_rebalance(svc, max_moves=0)


def test_execute_starts_one_rebalance_at_a_time(svc):
    out = fleet_api.fleet_rebalance(svc, dry_run=False, threshold=0.01)
    assert out == {"task_id": 1}
    assert svc.engine.submitted[0][0] == "rebalance"
    svc.store.task_create("rebalance", {})
    with pytest.raises(Conflict, match="already in progress"):
        fleet_api.fleet_rebalance(svc, dry_run=False)
