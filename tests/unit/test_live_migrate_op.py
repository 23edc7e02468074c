"""The live-migration workflow's monitor and rollback decisions, with the
agents faked."""
import types

import pytest

from agent.common.errors import DroverError, NotFound
from agent.common.rpc.methods import AGENT, check_call
from agent.controller.ops import live_migrate
from agent.controller.tasks.workflow import Context

MIG = "0e6b2c1a-4a38-4d43-9a57-6b4bbd0f0a11"


class FakeHosts:
    def __init__(self, answers):
        self.answers = answers          # (host, method) -> value or error
        self.calls = []

    def call(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)       # what AgentClient refuses
        self.calls.append((host, method))
        answer = self.answers[(host, method)]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _ctx(answers):
    store = types.SimpleNamespace(update_migration=lambda *a, **k: None)
    services = types.SimpleNamespace(hosts=FakeHosts(answers), store=store)
    return Context(task_id=1, params={"uuid": "i-1"}, services=services,
                   data={"source": "h1", "dest": "h2",
                         "migration_uuid": MIG})


def _job(status, reason=None):
    return {"status": status, "reason": reason, "migration_uuid": MIG,
            "elapsed": 2.5, "final_downtime_ms": 40,
            "progress": {"percent": 100}}


def test_completed_job_finishes_the_step():
    ctx = _ctx({("h1", "migration.wait"): _job("completed")})
    out = live_migrate.monitor(ctx)
    assert out["downtime_ms"] == 40 and out["elapsed"] == 2.5


def test_cancelled_job_is_a_cancellation():
    ctx = _ctx({("h1", "migration.wait"):
                _job("cancelled", "cancelled by the operator")})
    with pytest.raises(live_migrate.Cancelled, match="operator"):
        live_migrate.monitor(ctx)


def test_failed_job_fails_with_its_reason():
    ctx = _ctx({("h1", "migration.wait"):
                _job("failed", "completion timeout of 20 s reached")})
    with pytest.raises(DroverError, match="completion timeout"):
        live_migrate.monitor(ctx)


def test_lost_job_is_reconciled_with_libvirt():
    ctx = _ctx({("h1", "migration.wait"): NotFound("no migration"),
                ("h1", "instance.info"): NotFound("no domain"),
                ("h2", "instance.info"): {"state": "running"}})
    assert live_migrate.monitor(ctx)["elapsed"] is None
    ctx = _ctx({("h1", "migration.wait"): NotFound("no migration"),
                ("h1", "instance.info"): {"state": "running"},
                ("h2", "instance.info"): NotFound("no domain")})
    with pytest.raises(DroverError, match="lost the migration job"):
        live_migrate.monitor(ctx)


def test_a_job_of_another_migration_is_not_ours():
    other = dict(_job("completed"), migration_uuid="another")
    ctx = _ctx({("h1", "migration.wait"): other,
                ("h1", "instance.info"): {"state": "running"},
                ("h2", "instance.info"): NotFound("no domain")})
    with pytest.raises(DroverError, match="lost"):
        live_migrate.monitor(ctx)


def test_rollback_refuses_when_the_guest_already_moved():
    ctx = _ctx({("h1", "migration.abort"): NotFound("no job"),
                ("h1", "migration.wait"): _job("completed")})
    with pytest.raises(DroverError, match="completed while"):
        live_migrate.stop_job(ctx)


def test_rollback_after_abort_keeps_the_guest_on_the_source():
    ctx = _ctx({("h1", "migration.abort"): _job("running"),
                ("h1", "migration.wait"): _job("cancelled"),
                ("h1", "instance.info"): {"state": "running"},
                ("h2", "instance.info"): NotFound("no domain")})
    live_migrate.stop_job(ctx)
    assert ("h1", "migration.abort") in ctx.services.hosts.calls

