"""The live-migration workflow's monitor and rollback decisions, on the
simulated fleet: a job started in the source agent, then the step."""
import uuid as uuidlib

import pytest

from agent.common.errors import DroverError
from agent.controller.ops import live_migrate
from agent.controller.tasks.workflow import Context
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    assert lab.boot("vm1", host="h1")["state"] == "done"
    yield lab
    lab.close()


def _migration(lab):
    return lab.store.create_migration(lab.uuid("vm1"), live_migrate.TYPE,
                                      "h1", dest_host="h2")["uuid"]


def _ctx(lab, mig):
    return Context(task_id=1, params={"uuid": lab.uuid("vm1")},
                   services=lab.svc,
                   data={"source": "h1", "dest": "h2",
                         "migration_uuid": mig})


def _start_job(lab, mig):
    """What the prepare and migrate steps leave: the destination ready,
    the job running in the source agent."""
    uuid, agents = lab.uuid("vm1"), lab.fleet.agents
    facts = agents["h1"].call("live.disk_facts", uuid=uuid, storage="local")
    lab.fleet.host("h2").images.add(facts["backing_file"].rsplit("/")[-1])
    agents["h2"].call("live.prepare_dest", uuid=uuid, storage="local",
                      block_migration=True, disk_facts=facts)
    return agents["h1"].call(
        "migration.start", uuid=uuid,
        dest_address=lab.fleet.host("h2").address,
        migration_address=lab.fleet.host("h2").address,
        migration_uuid=mig, block_migration=True)


def test_completed_job_finishes_the_step(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    out = live_migrate.monitor(_ctx(lab, mig))
    assert out["downtime_ms"] == 30 and out["elapsed"] == 1.0
    assert lab.domains() == [("vm1", "h2", "running")]


def test_cancelled_job_is_a_cancellation(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    lab.fleet.agents["h1"].call("migration.abort", uuid=lab.uuid("vm1"))
    with pytest.raises(live_migrate.Cancelled, match="operator"):
        live_migrate.monitor(_ctx(lab, mig))
    assert lab.domains() == [("vm1", "h1", "running")]


def test_failed_job_fails_with_its_reason(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    lab.fleet.cut("h2")         # the migration stream breaks
    with pytest.raises(DroverError, match="No route to host"):
        live_migrate.monitor(_ctx(lab, mig))
    assert lab.domains() == [("vm1", "h1", "running")]


def test_lost_job_is_reconciled_with_libvirt(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    lab.fleet.agents["h1"].call("migration.wait", uuid=lab.uuid("vm1"))
    lab.fleet.agents["h1"].call("migration.wait", uuid=lab.uuid("vm1"))
    lab.fleet.crash_agent("h1")     # the job had ended: the guest is on h2
    lab.fleet.restart_agent("h1")
    assert live_migrate.monitor(_ctx(lab, mig))["elapsed"] is None


def test_lost_running_job_leaves_the_guest_on_the_source(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    lab.fleet.crash_agent("h1")     # libvirt aborts the migration
    lab.fleet.restart_agent("h1")
    with pytest.raises(DroverError, match="lost the migration job"):
        live_migrate.monitor(_ctx(lab, mig))
    assert lab.domains() == [("vm1", "h1", "running")]


def test_a_job_of_another_migration_is_not_ours(lab):
    _start_job(lab, str(uuidlib.uuid4()))
    with pytest.raises(DroverError, match="lost"):
        live_migrate.monitor(_ctx(lab, _migration(lab)))


def test_rollback_refuses_when_the_guest_already_moved(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    live_migrate.monitor(_ctx(lab, mig))
    with pytest.raises(DroverError, match="completed while"):
        live_migrate.stop_job(_ctx(lab, mig))


def test_rollback_after_abort_keeps_the_guest_on_the_source(lab):
    mig = _migration(lab)
    _start_job(lab, mig)
    live_migrate.stop_job(_ctx(lab, mig))
    assert ("h1", "migration.abort") in lab.fleet.calls
    assert lab.domains() == [("vm1", "h1", "running")]
