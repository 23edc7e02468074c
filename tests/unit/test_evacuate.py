"""Evacuation over a real store with faked agents: refusals, shared and
local (--rebuild) storage, SHUTOFF kept, a failed start that touches only
the destination, and superseding a live migration whose source died and
a resize waiting in VERIFY_RESIZE."""
import pytest

from agent.common.errors import Conflict, DroverError
from agent.common.rpc.methods import AGENT, check_call
from agent.controller import states
from agent.controller.admission import Admission
from agent.controller.daemon import Services
from agent.controller.db import Store, upgrade
from agent.controller.ops import WORKFLOWS, evacuate, host_evacuate, steps
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40, "domains": []}


class FakeAgents:
    """Answers like healthy agents; ``fail``: (host, method) -> error;
    ``running``: hosts whose libvirt runs the guest."""

    def __init__(self):
        self.calls = []
        self.fail = {}
        self.running = set()

    def call(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)       # what AgentClient refuses
        self.calls.append((host, method))
        err = self.fail.get((host, method))
        if err is not None:
            raise err
        if method == "instance.info":
            return {"state": "running" if host in self.running
                    else "shutoff"}
        return {}

    def on(self, host):
        return [m for h, m in self.calls if h == host]


@pytest.fixture
def svc(tmp_path, mocker):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2", "h3"):
        store.upsert_host(name, address=f"198.18.0.1{name[1]}", facts=FACTS)
    store.create_flavor("small", 1, 1024, 1)
    store.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24)
    mocker.patch.object(steps.images, "ensure_on_host", return_value="/img")
    s = Services(store=store, hosts=FakeAgents())
    s.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, s)
    s.admission = Admission(s)
    yield s
    s.engine.shutdown()
    store.close()


def _placed(svc, name="vm", host="h1", storage="shared",
            vm_state=states.ACTIVE):
    inst = svc.store.create_instance(name, "small", "img", storage=storage)
    svc.store.claim(host, inst["uuid"], 1, 1024, 1)
    return svc.store.update_instance(
        inst["uuid"], host=host, vm_state=vm_state, task_state=None,
        power_state=states.RUNNING if vm_state == states.ACTIVE
        else states.SHUTDOWN)


def _fence(svc, host="h1"):
    svc.store._set_host(host, state="fenced")    # FENCE's state, by hand


def _evacuate(svc, inst, **params):
    _, tid = svc.admission.submit("evacuate", inst["uuid"], supersede=True,
                                  **params)
    svc.engine.wait(tid)
    return svc.store.task_get(tid), svc.store.get_instance(inst["uuid"])


def _evacuation(svc, inst):
    return svc.store.list_migrations(instance_uuid=inst["uuid"],
                                     type="evacuation")[0]


def _claims(svc, inst):
    return sorted(a["host"] for a in
                  svc.store.list_allocations(instance_uuid=inst["uuid"]))


# -- pure decisions -----------------------------------------------------------

def test_a_local_disk_needs_rebuild_and_the_refusal_says_it_is_lost():
    inst = {"name": "vm", "host": "h1", "storage": "local"}
    with pytest.raises(Conflict, match="data on that local disk is lost"):
        evacuate.check_storage(inst, rebuild=False)
    evacuate.check_storage(inst, rebuild=True)
    evacuate.check_storage(dict(inst, storage="shared"), rebuild=False)


@pytest.mark.parametrize("vm_state, final", [
    (states.ACTIVE, states.ACTIVE), (states.STOPPED, states.STOPPED),
    (states.ERROR, states.ACTIVE)])
def test_shutoff_stays_shutoff_the_rest_is_started(vm_state, final):
    assert evacuate.final_vm_state({"vm_state": vm_state}) == final


def test_a_cold_move_past_its_rename_is_not_superseded():
    mig = {"id": 4, "type": "migration", "status": "migrating",
           "source_host": "h1", "dest_host": "h2"}
    evacuate.check_superseded([(mig, {"record", "power_off"})])
    with pytest.raises(Conflict, match="which copy is whole"):
        evacuate.check_superseded([(mig, {"power_off", "rename"})])
    live = dict(mig, type="live-migration")
    evacuate.check_superseded([(live, {"migrate", "monitor"})])


def test_host_evacuate_triage():
    inst = {"vm_state": states.ACTIVE, "storage": "local"}
    assert "--rebuild" in host_evacuate.triage(inst, rebuild=False)
    assert host_evacuate.triage(inst, rebuild=True) is None
    assert "vm_state" in host_evacuate.triage(
        dict(inst, vm_state=states.BUILDING), rebuild=True)


# -- the workflow over a real store ----------------------------------------

def test_refused_while_the_host_is_up_and_nothing_changes(svc):
    inst = _placed(svc)
    with pytest.raises(Conflict, match="only a fenced host or one set down"):
        svc.admission.submit("evacuate", inst["uuid"], supersede=True)
    after = svc.store.get_instance(inst["uuid"])
    assert (after["host"], after["vm_state"], after["task_state"],
            after["task_id"]) == ("h1", states.ACTIVE, None, None)
    assert svc.store.list_migrations() == []
    assert svc.store.list_tasks() == []
    assert svc.hosts.calls == []


def test_a_down_but_not_fenced_host_is_refused(svc):
    inst = _placed(svc)
    svc.store.mark_host_down("h1")
    with pytest.raises(Conflict, match="unreachable is not proof"):
        svc.admission.submit("evacuate", inst["uuid"], supersede=True)


def test_shared_storage_guest_is_started_elsewhere_from_its_directory(svc):
    inst = _placed(svc)
    _fence(svc)
    task, after = _evacuate(svc, inst)
    assert task["state"] == "done", task
    assert after["host"] in ("h2", "h3") and after["status"] == "ACTIVE"
    dest = after["host"]
    assert svc.hosts.on(dest) == ["instance.define", "instance.start"]
    assert svc.hosts.on("h1") == []         # the failed host: never called
    assert (after["uuid"], after["name"], after["mac"], after["ip"]) == \
        (inst["uuid"], inst["name"], inst["mac"], inst["ip"])
    mig = _evacuation(svc, inst)
    assert (mig["status"], mig["source_host"], mig["dest_host"]) == \
        ("done", "h1", dest)
    # The claim on the failed host goes when it is cleaned.
    assert _claims(svc, inst) == sorted(["h1", dest])


def test_shutoff_guest_stays_shutoff(svc):
    inst = _placed(svc, vm_state=states.STOPPED)
    _fence(svc)
    task, after = _evacuate(svc, inst, host="h3")
    assert task["state"] == "done", task
    assert after["status"] == "SHUTOFF" and after["host"] == "h3"
    assert "instance.start" not in svc.hosts.on("h3")


def test_given_destination_is_still_filtered(svc):
    inst = _placed(svc)
    _fence(svc)
    svc.store.disable_host("h3", "maintenance")
    task, after = _evacuate(svc, inst, host="h3")
    assert task["state"] == "failed" and "disabled" in task["error"]
    assert after["host"] == "h1"


def test_local_disk_rebuilt_only_with_rebuild(svc):
    inst = _placed(svc, storage="local")
    _fence(svc)
    with pytest.raises(Conflict, match="lost"):
        svc.admission.submit("evacuate", inst["uuid"], supersede=True)
    assert svc.store.list_migrations() == []
    task, after = _evacuate(svc, inst, rebuild=True)
    assert task["state"] == "done", task
    dest = after["host"]
    assert svc.hosts.on(dest) == ["instance.prepare", "instance.define",
                                  "instance.start"]
    assert (after["mac"], after["ip"], after["flavor"]["name"]) == \
        (inst["mac"], inst["ip"], "small")


def test_a_start_refused_by_the_disk_lease_destroys_nothing(svc):
    """The operator set down a host that is alive: QEMU's lock refuses
    the shared disk elsewhere; only the destination is undone."""
    inst = _placed(svc)
    _fence(svc)
    lock = DroverError('cannot start domain: Failed to get "write" lock')
    svc.hosts.fail[("h2", "instance.start")] = lock
    task, after = _evacuate(svc, inst, host="h2")
    assert task["state"] == "failed" and "write" in task["error"]
    assert after["host"] == "h1" and after["vm_state"] == states.ACTIVE
    assert after["task_state"] is None and "lock" in after["error"]
    assert svc.hosts.on("h1") == []
    assert "instance.cleanup" not in svc.hosts.on("h2")   # shared: kept
    assert svc.hosts.on("h2")[-2:] == ["instance.destroy",
                                       "instance.undefine"]
    assert _evacuation(svc, inst)["status"] == "failed"
    assert _claims(svc, inst) == ["h1"]
    # It can be evacuated again.
    del svc.hosts.fail[("h2", "instance.start")]
    task, after = _evacuate(svc, inst)
    assert task["state"] == "done"


def _in_flight_live_migration(svc, inst, dest="h3"):
    mig = svc.store.create_migration(inst["uuid"], "live-migration", "h1",
                                     dest_host=dest,
                                     status=states.MIG_RUNNING)
    svc.store.claim(dest, mig["uuid"], 1, 1024, 1,
                    instance_uuid=inst["uuid"])
    _, old = svc.store.admit_task("live_migrate", {"uuid": inst["uuid"]},
                                  inst["uuid"], rule=None)
    svc.store.update_instance(inst["uuid"], task_state=states.MIGRATING)
    return mig, old


def test_supersedes_a_live_migration_whose_source_died(svc):
    inst = _placed(svc)
    mig, old = _in_flight_live_migration(svc, inst)
    _fence(svc)
    task, after = _evacuate(svc, inst)
    assert task["state"] == "done", task
    assert svc.store.task_get(old)["superseded_by"] == task["id"]
    assert after["host"] == "h2"        # not the live migration's host
    lm = svc.store.get_migration(mig["uuid"])
    assert lm["status"] == "failed" and "superseded" in lm["error"]
    assert svc.store.list_allocations(consumer=mig["uuid"]) == []
    assert "live.cleanup_dest" in svc.hosts.on("h3")
    assert _claims(svc, inst) == ["h1", "h2"]


def test_a_live_migration_that_completed_is_not_evacuated(svc):
    inst = _placed(svc)
    _in_flight_live_migration(svc, inst)
    _fence(svc)
    svc.hosts.running.add("h3")         # the guest made it there
    live_tasks = svc.store.list_tasks(instance_uuid=inst["uuid"],
                                      unfinished=True)
    # Refused up front, before the live task is superseded: it finishes
    # the move itself.
    with pytest.raises(Conflict, match="runs on h3: its live migration"):
        _evacuate(svc, inst)
    assert svc.store.get_instance(inst["uuid"])["host"] == "h1"
    assert not any(m == "instance.start" for _, m in svc.hosts.calls)
    assert all(not svc.store.task_get(t["id"])["superseded_by"]
               for t in live_tasks)


def test_verify_resize_keeps_the_copy_on_the_failed_destination(svc):
    """h3 resized the guest onto h1 (VERIFY_RESIZE), then h1 failed: its
    copy wins (as in Nova: confirm, then evacuate)."""
    inst = _placed(svc, host="h3")
    mig = svc.store.create_migration(inst["uuid"], "resize", "h3",
                                     dest_host="h1",
                                     status=states.MIG_FINISHED)
    svc.store.update_migration(mig["uuid"],
                               progress={"old_vm_state": states.ACTIVE})
    svc.store.claim("h1", mig["uuid"], 1, 1024, 1,
                    instance_uuid=inst["uuid"])
    inst = svc.store.update_instance(inst["uuid"], host="h1",
                                     vm_state=states.RESIZED)
    _fence(svc)
    task, after = _evacuate(svc, inst, host="h2")
    assert task["state"] == "done", task
    assert after["host"] == "h2" and after["status"] == "ACTIVE"
    assert svc.store.get_migration(mig["uuid"])["status"] == "confirmed"
    # The old copy on h3 goes (shared: the guest runs on its own copy).
    assert svc.hosts.on("h3") == ["instance.info", "instance.undefine",
                                  "move.discard"]
    # The claim on the failed host is the instance's until h1 is cleaned.
    assert _claims(svc, inst) == ["h1", "h2"]


def test_host_evacuate_reports_evacuated_and_left_behind(svc):
    shared = _placed(svc, "vm-shared")
    local = _placed(svc, "vm-local", storage="local")
    _fence(svc)
    tid = svc.admission.submit_host("host-evacuate", "h1", max_parallel=2)
    svc.engine.wait(tid)
    task = svc.store.task_get(tid)
    assert task["state"] == "done", task
    report = {r["Server"]: r for r in
              svc.store.steps_get(tid)[0]["data"]["report"]}
    assert report["vm-shared"]["Result"] == "evacuated"
    assert report["vm-shared"]["Destination"] in ("h2", "h3")
    assert report["vm-local"]["Result"] == "left behind"
    assert "lost" in report["vm-local"]["Reason"]
    assert svc.store.get_instance(local["uuid"])["host"] == "h1"
    assert svc.store.get_instance(shared["uuid"])["host"] != "h1"


def test_host_evacuate_of_an_up_host_is_refused(svc):
    _placed(svc)
    with pytest.raises(Conflict):
        svc.admission.submit_host("host-evacuate", "h1")
    assert svc.store.list_tasks() == []


def test_evacuated_again_before_the_first_host_returns(svc):
    inst = _placed(svc)
    _fence(svc)
    task, after = _evacuate(svc, inst, host="h2")
    _fence(svc, "h2")
    task, after = _evacuate(svc, inst, host="h3")
    assert task["state"] == "done", task
    migs = svc.store.list_migrations(instance_uuid=inst["uuid"],
                                     type="evacuation")
    assert [(m["source_host"], m["status"]) for m in migs] == \
        [("h2", "done"), ("h1", "done")]
    assert _claims(svc, inst) == ["h1", "h2", "h3"]


def test_a_host_only_set_down_whose_agent_says_the_guest_runs(svc):
    """The operator's mistake without a lease to catch it (a rebuilt
    local disk): the failed host still answers that the guest runs."""
    inst = _placed(svc, storage="local")
    svc.store._set_host("h1", state="down")
    real = svc.store.get_host

    def get_host(name):
        host = real(name)
        return dict(host, forced_down=True) if name == "h1" else host
    svc.store.get_host = get_host       # FENCE's column, by hand
    svc.hosts.running.add("h1")
    task, after = _evacuate(svc, inst, rebuild=True)
    assert task["state"] == "failed" and "runs on h1" in task["error"]
    assert after["host"] == "h1"
    assert not any(m in ("instance.start", "instance.prepare")
                   for _, m in svc.hosts.calls)
