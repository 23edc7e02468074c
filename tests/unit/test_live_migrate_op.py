"""The live-migration workflow's monitor and rollback decisions, on the
simulated fleet: a job started in the source agent, then the step."""
import uuid as uuidlib

import pytest

from agent.common.errors import DroverError, NotFound
from agent.controller.ops import live_migrate
from agent.controller.tasks.workflow import Context
from agent.transport.errors import HostUnreachable
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


def test_completed_migration_records_the_bandwidth_cap_it_ran_under(
        lab, monkeypatch):
    agent = lab.fleet.agents["h1"]
    monkeypatch.setattr(agent, "policy", {**agent.policy, "bandwidth": 24})
    assert lab.op("live", "vm1", host="h2")["state"] == "done"
    [record] = lab.store.list_migrations(type=live_migrate.TYPE)
    assert record["status"] == "completed"
    assert record["progress"]["bandwidth_limit"] == 24
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


# -- the whole workflow over a real store, each step failing in turn ---------

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40,
         "hypervisor_type": "qemu", "cpu_model": "qemu64",
         "libvirt_version": "9.0.0", "qemu_version": "7.2.0"}


class World:
    """The agents of h1 (source) and h2 (destination), faked: where the
    instance's domain is, and which call fails how."""

    def __init__(self):
        self.domains = {"h1": "running"}     # host -> state
        self.fail = {}                       # method -> exception
        self.fail_times = {}                 # method -> how often (all)
        self.down = set()                    # unreachable hosts
        self.cut = None                      # down once migrating
        self.job = "failed"                  # how the job ends
        self.calls = []
        self.cleanup_error = None

    def call(self, host, method, timeout=None, **params):
        self.calls.append((host, method))
        if host in self.down:
            raise HostUnreachable(f"{host} cut off")
        if method in self.fail and self.fail_times.get(method, 1) > 0:
            if method in self.fail_times:
                self.fail_times[method] -= 1
            raise self.fail[method]
        if method == "image.status":
            return {"present": True, "path": "/cache/img",
                    "upload_path": ""}
        if method == "live.disk_facts":
            return {"virtual_size": 1 << 30, "targets": ["vda"]}
        if method == "migration.start" and self.cut:
            self.down.add(self.cut)
        if method in ("migration.start", "migration.abort"):
            return {"status": "running", "created_at": 1.0,
                    "migration_uuid": None}
        if method == "migration.wait":
            return {"status": self.job, "reason": "boom",
                    "migration_uuid": None, "elapsed": 1,
                    "final_downtime_ms": 1, "progress": {}}
        if method == "instance.info":
            if host not in self.domains:
                raise NotFound("no domain")
            return {"state": self.domains[host]}
        if method == "live.prepare_dest":
            self.domains["h2"] = "paused"     # libvirt's incoming copy
        if method == "live.cleanup_dest":
            assert params["source_state"] == self.domains.get("h1")
            self.domains.pop("h2", None)
            if self.cleanup_error:
                raise self.cleanup_error
        return {}


@pytest.fixture
def svc(tmp_path):
    from agent.controller.daemon import Services
    from agent.controller.db import Store, upgrade
    from agent.controller.ops import WORKFLOWS
    from agent.controller.tasks.actionlog import ActionTaskLog
    from agent.controller.tasks.engine import TaskEngine
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2"):
        store.upsert_host(name, address=f"198.18.0.{name[1]}", facts=FACTS)
    store.create_flavor("small", 1, 256, 1)
    store.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24,
                       checksum="x")
    s = Services(store=store, hosts=World())
    s.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, s)
    yield s
    store.close()


def _running_on_h1(svc):
    from agent.controller import states
    store = svc.store
    inst = store.create_instance("vm", "small", "img")
    store.claim("h1", inst["uuid"], 1, 256, 1, instance_uuid=inst["uuid"])
    return store.update_instance(inst["uuid"], host="h1",
                                 vm_state=states.ACTIVE,
                                 power_state=states.RUNNING,
                                 task_state=None)


def _live_migrate(svc, inst):
    from agent.controller.ops import OPERATIONS
    store = svc.store
    op = OPERATIONS["live-migrate"]     # admitted past its precheck
    _, tid = store.admit_task(op.kind, {
        "uuid": inst["uuid"], "host": "h2", "shared": False,
        "action": op.name}, inst["uuid"], rule=op.rule, action=op.name,
        operation=op.name)
    svc.engine.run(tid)
    return store.get_instance(inst["uuid"]), store.task_get(tid), \
        store.list_migrations(instance_uuid=inst["uuid"])[0]


def _on_h2(svc):
    return [(a["vcpus"], a["ram_mb"])
            for a in svc.store.list_allocations(host="h2")]


FAILURES = {
    "checks": dict(fail={"live.disk_facts": DroverError("no disk facts")}),
    "prepare (image)": dict(fail={"image.status":
                                  DroverError("no image cache")}),
    "prepare": dict(fail={"live.prepare_dest": DroverError("no bridge")}),
    "migrate": dict(fail={"migration.start": DroverError("refused")}),
    "monitor": dict(job="failed"),
    "monitor: cancelled": dict(job="cancelled"),
    "undo: source unreachable for a while": dict(
        fail={"migration.abort": HostUnreachable("h1 gone")},
        fail_times={"migration.abort": 1}),
    "undo: destination fails": dict(
        cleanup_error=DroverError("cannot remove the directory")),
    "undo: destination unreachable": dict(cut="h2"),
}


@pytest.mark.parametrize("where", FAILURES)
def test_claim_released_and_no_fault_whichever_step_fails(svc, where,
                                                          monkeypatch):
    monkeypatch.setattr(live_migrate, "DEST_GRACE_S", 0)
    monkeypatch.setattr(live_migrate, "DEST_RETRY_S", 0)
    for key, value in FAILURES[where].items():
        setattr(svc.hosts, key, value)
    inst, task, mig = _live_migrate(svc, _running_on_h1(svc))
    assert task["state"] == "failed"
    assert _on_h2(svc) == []                            # claim released
    assert [a["host"] for a in svc.store.list_allocations(
        consumer=inst["uuid"])] == ["h1"]
    assert (inst["status"], inst["host"], inst["error"]) == \
        ("ACTIVE", "h1", None)
    assert mig["status"] in ("failed", "cancelled") and mig["error"], mig
    action = svc.store.list_actions(inst["uuid"])[0]
    assert "Error" in [e["result"] for e in action["events"]]
    assert action["message"]                            # the reason


def test_leftover_recorded_when_the_destination_stays_unreachable(
        svc, monkeypatch):
    monkeypatch.setattr(live_migrate, "DEST_GRACE_S", 0)
    svc.hosts.fail["live.cleanup_dest"] = HostUnreachable("h2 cut off")
    inst, _task, _mig = _live_migrate(svc, _running_on_h1(svc))
    cleanups = svc.store.list_cleanups(host="h2")
    assert [(c["instance_uuid"], c["remove"]) for c in cleanups] == \
        [(inst["uuid"], ["files"])]
    assert _on_h2(svc) == []                            # claim released


def test_destination_retried_until_it_answers(svc, monkeypatch):
    monkeypatch.setattr(live_migrate, "DEST_RETRY_S", 0)
    answers = iter([HostUnreachable("h2 cut off")] * 3 + [{}])
    real = svc.hosts.call

    def call(host, method, **params):
        if method == "live.cleanup_dest":
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
        return real(host, method, **params)
    monkeypatch.setattr(svc.hosts, "call", call)
    inst, _task, mig = _live_migrate(svc, _running_on_h1(svc))
    assert svc.store.list_cleanups() == []
    assert _on_h2(svc) == [] and inst["error"] is None


def test_abort_is_a_cancellation_without_fault(svc):
    svc.hosts.job = "cancelled"
    inst, _task, mig = _live_migrate(svc, _running_on_h1(svc))
    assert mig["status"] == "cancelled" and "cancelled" in mig["error"]
    assert inst["status"] == "ACTIVE" and inst["error"] is None
    assert _on_h2(svc) == []


def test_guest_found_on_the_destination_keeps_its_claim(svc):
    """The migration completed after all: the destination's claim is the
    guest's, the instance ERROR for the operator."""
    svc.hosts.job = "failed"
    real = svc.hosts.call

    def call(host, method, **params):
        if method == "migration.wait":     # it landed meanwhile
            svc.hosts.domains = {"h2": "running"}
        return real(host, method, **params)
    svc.hosts.call = call
    inst, task, mig = _live_migrate(svc, _running_on_h1(svc))
    assert inst["status"] == "ERROR" and "runs on h2" in inst["error"]
    assert _on_h2(svc) == [(1, 256)]
    assert mig["status"] == "failed"


def test_no_room_on_the_destination_fails_the_record_and_claims_nothing(
        svc):
    inst = _running_on_h1(svc)
    svc.store.claim("h2", "someone-else", 1, 3584, 1)
    inst, task, mig = _live_migrate(svc, inst)
    assert task["state"] == "failed"
    assert (mig["status"], bool(mig["error"])) == ("failed", True)
    assert [a["consumer"] for a in svc.store.list_allocations(host="h2")] \
        == ["someone-else"]
    assert (inst["status"], inst["host"], inst["error"]) == \
        ("ACTIVE", "h1", None)


def test_scheduling_again_keeps_one_record_and_one_claim(svc):
    """A controller that died in the schedule step runs it again: the
    same migration record and the claim it already holds."""
    from agent.controller.ops import OPERATIONS
    from agent.controller.tasks.workflow import Context
    inst = _running_on_h1(svc)
    op = OPERATIONS["live-migrate"]
    params = {"uuid": inst["uuid"], "host": "h2", "shared": False,
              "action": op.name}
    outs = [live_migrate.schedule(Context(task_id=1, params=params,
                                          services=svc))
            for _ in range(2)]
    assert outs[0] == outs[1] and outs[0]["dest"] == "h2"
    assert len(svc.store.list_migrations(instance_uuid=inst["uuid"])) == 1
    assert len(svc.store.list_allocations(host="h2")) == 1
