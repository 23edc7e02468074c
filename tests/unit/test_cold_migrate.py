"""Cold migration and resize: the pure decisions, the claims bookkeeping
of confirm and revert, and the workflow's undo against a fake agent."""
import datetime
import types

import pytest

from agent.common.errors import DroverError, InvalidInput
from agent.common.rpc.methods import AGENT, check_call
from agent.conf import CONF
from agent.controller import periodic, states
from agent.controller.db import Store, upgrade
from agent.controller.ops import cold_migrate as cm
from agent.controller.ops import resize_confirm, steps
from agent.controller.tasks.engine import TaskEngine

SMALL = {"id": 1, "name": "s", "vcpus": 1, "ram_mb": 256, "disk_gb": 1}
BIG = {"id": 2, "name": "b", "vcpus": 2, "ram_mb": 512, "disk_gb": 3}


def test_migration_type_is_resize_only_with_a_flavor():
    assert cm.migration_type({"uuid": "x"}) == "migration"
    assert cm.migration_type({"uuid": "x", "flavor": "b"}) == "resize"


def test_disks_only_grow():
    cm.check_flavors(SMALL, BIG)
    cm.check_flavors(SMALL, dict(SMALL, ram_mb=128))     # RAM may go down
    with pytest.raises(InvalidInput, match="disks only grow"):
        cm.check_flavors(BIG, SMALL)


@pytest.mark.parametrize("resize, allow, ignored", [
    (False, False, ("h1",)), (False, True, ("h1",)),
    (True, False, ("h1",)), (True, True, ())])
def test_same_host_only_for_an_allowed_resize(resize, allow, ignored):
    assert cm.ignore_hosts(resize, "h1", allow) == ignored


def test_copy_path_follows_the_probe():
    assert cm.copy_path(True) == "shared"
    assert cm.copy_path(False) == "copy"


def test_undo_complete_only_when_every_step_ran_back():
    assert cm.undo_complete(["undone", "undone"])
    assert not cm.undo_complete(["undone", "done", "undone"])
    assert not cm.undo_complete(["failed"])


def test_a_stopped_instance_stays_stopped():
    assert cm.final_vm_state(states.STOPPED) == states.STOPPED
    assert cm.final_vm_state(states.ACTIVE) == states.ACTIVE
    assert cm.power_for(states.STOPPED) == states.SHUTDOWN
    assert cm.power_for(states.ACTIVE) == states.RUNNING


def test_auto_confirm_only_after_the_window():
    now = datetime.datetime(2024, 1, 1, 12, 0, 0)
    mig = {"type": "resize", "status": states.MIG_FINISHED,
           "updated_at": "2024-01-01T11:59:30Z"}
    assert periodic.due_for_confirm(mig, now, 30)
    assert not periodic.due_for_confirm(mig, now, 31)
    assert not periodic.due_for_confirm(mig, now, 0)          # off
    assert not periodic.due_for_confirm(dict(mig, type="live-migration"),
                                        now, 1)
    assert not periodic.due_for_confirm(dict(mig, status="confirmed"),
                                        now, 1)


# -- with a real store ------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    for name, addr in (("h1", "198.18.0.11"), ("h2", "198.18.0.12")):
        st.upsert_host(name, addr, facts={"vcpus": 8, "memory_mb": 8192,
                                          "disk_gb": 100})
    st.create_flavor("s", 1, 256, 1)
    st.create_flavor("b", 2, 512, 3)
    st.create_image("img", "/images/img", "qcow2", 1 << 30, 1 << 20)
    yield st
    st.close()


def _placed(store, host="h1", flavor="s"):
    inst = store.create_instance("vm1", flavor, "img")
    store.claim(host, inst["uuid"], 1, 256, 1)
    return store.update_instance(inst["uuid"], host=host,
                                 vm_state=states.ACTIVE, task_state=None)


def _allocs(store):
    return sorted((a["host"], a["consumer"], a["ram_mb"])
                  for a in store.list_allocations())


def test_confirm_hands_the_destination_claim_to_the_instance(store):
    inst = _placed(store)
    mig = store.create_migration(inst["uuid"], "resize", "h1", "h2")
    store.claim("h2", mig["uuid"], 2, 512, 3, instance_uuid=inst["uuid"])
    resize_confirm.confirm_claims(store, inst["uuid"], mig)
    assert _allocs(store) == [("h2", inst["uuid"], 512)]


def test_revert_releases_the_destination_claim(store):
    inst = _placed(store)
    mig = store.create_migration(inst["uuid"], "resize", "h1", "h2")
    store.claim("h2", mig["uuid"], 2, 512, 3, instance_uuid=inst["uuid"])
    store.release(mig["uuid"])
    assert _allocs(store) == [("h1", inst["uuid"], 256)]


class FakeAgents:
    """Agent calls recorded; ``fail`` maps "host method" to an error."""

    def __init__(self, fail=None, probe_seen=False):
        self.calls, self.fail = [], fail or {}
        self.probe_seen = probe_seen

    def call(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)       # what AgentClient refuses
        self.calls.append((host, method))
        err = self.fail.get(f"{host} {method}")
        if err is not None:
            raise err
        return {"move.power_off": {"result": "shutdown"},
                "storage.probe_write": {"name": ".drover-probe-1"},
                "storage.probe_check": {"found": self.probe_seen},
                "move.base": {"path": "/var/lib/drover/instances"},
                "move.copy_start": {"state": "done", "percent": 100.0,
                                    "result": {"bytes_sent": 10}},
                "image.status": {"present": True, "path": "/img"},
                }.get(method, {})


def _run(store, agents, operation, params, mocker):
    """``operation`` admitted and run to its end; its task."""
    from agent.controller.admission import Admission
    from agent.controller.ops import WORKFLOWS
    from agent.controller.tasks.actionlog import ActionTaskLog
    mocker.patch.object(steps.images, "ensure_on_host", return_value="/img")
    svc = types.SimpleNamespace(store=store, hosts=agents)
    svc.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, svc,
                            max_workers=1)
    svc.admission = Admission(svc)
    params = dict(params)
    try:
        _, tid = svc.admission.submit(operation, params.pop("uuid"),
                                      **params)
        svc.engine.wait(tid)
        return store.task_get(tid)
    finally:
        svc.engine.shutdown()


def test_resize_ends_in_verify_resize_with_the_claim_on_the_dest(store,
                                                                 mocker):
    inst = _placed(store)
    agents = FakeAgents()
    task = _run(store, agents, "resize", {"uuid": inst["uuid"],
                                          "flavor": "b"}, mocker)
    assert task["state"] == "done", task
    after = store.get_instance(inst["uuid"])
    assert (after["status"], after["host"], after["flavor"]["name"],
            after["old_flavor"]["name"]) == ("VERIFY_RESIZE", "h2", "b", "s")
    mig = store.list_migrations(instance_uuid=inst["uuid"])[0]
    assert (mig["type"], mig["status"], mig["dest_host"]) == \
        ("resize", "finished", "h2")
    assert _allocs(store) == sorted([("h1", inst["uuid"], 256),
                                     ("h2", mig["uuid"], 512)])
    assert ("h1", "move.copy_start") in agents.calls
    assert ("h2", "instance.start") in agents.calls

    task = _run(store, agents, "resize-revert", {"uuid": inst["uuid"]},
                mocker)
    assert task["state"] == "done", task
    back = store.get_instance(inst["uuid"])
    assert (back["status"], back["host"], back["flavor"]["name"]) == \
        ("ACTIVE", "h1", "s")
    assert _allocs(store) == [("h1", inst["uuid"], 256)]
    assert agents.calls[-2:] == [("h1", "instance.define"),
                                 ("h1", "instance.start")]


def test_failed_define_undoes_back_to_the_source(store, mocker):
    inst = _placed(store)
    agents = FakeAgents(fail={"h2 instance.define":
                              DroverError("domain already exists")})
    task = _run(store, agents, "migrate", {"uuid": inst["uuid"]},
                mocker)
    assert task["state"] == "failed"
    after = store.get_instance(inst["uuid"])
    assert (after["status"], after["host"]) == ("ACTIVE", "h1")
    assert "already exists" in after["error"]
    undo = agents.calls[agents.calls.index(("h2", "instance.define")) + 1:]
    assert undo == [("h2", "instance.undefine"), ("h2", "instance.cleanup"),
                    ("h1", "move.restore"), ("h1", "instance.define"),
                    ("h1", "instance.start")]
    assert _allocs(store) == [("h1", inst["uuid"], 256)]
    assert store.list_migrations()[0]["status"] == "error"


def test_unreachable_destination_leaves_a_recorded_leftover(store, mocker):
    inst = _placed(store)
    down = DroverError("host h2 is unreachable")
    agents = FakeAgents(fail={"h2 move.finish_disk": down,
                              "h2 instance.cleanup": down})
    task = _run(store, agents, "migrate", {"uuid": inst["uuid"]},
                mocker)
    assert task["state"] == "failed"
    assert store.get_instance(inst["uuid"])["status"] == "ACTIVE"
    mig = store.list_migrations()[0]
    assert mig["progress"]["leftover_host"] == "h2"
    # Once h2 answers, the periodic task removes it (and forgets it).
    agents.fail.clear()
    periodic.clean_leftovers(types.SimpleNamespace(store=store,
                                                   hosts=agents))
    assert agents.calls[-1] == ("h2", "instance.cleanup")
    assert "leftover_host" not in store.list_migrations()[0]["progress"]


def test_failed_undo_leaves_error_with_an_event(store, mocker):
    inst = _placed(store)
    agents = FakeAgents(fail={"h2 move.finish_disk": DroverError("boom"),
                              "h1 move.restore": DroverError("disk gone")},
                        probe_seen=True)
    task = _run(store, agents, "migrate", {"uuid": inst["uuid"]}, mocker)
    assert task["state"] == "failed"
    assert store.get_instance(inst["uuid"])["status"] == "ERROR"
    events = store.list_actions(inst["uuid"])[0]["events"]
    assert events[-1]["event"] == "migrate_error"
    assert "kept on h1" in events[-1]["details"]


def test_same_host_resize_allowed_by_option(store, mocker):
    CONF.set_override("allow_resize_to_same_host", True, "compute")
    try:
        inst = _placed(store)
        mocker.patch.object(cm.placement, "place", return_value="h1")
        task = _run(store, FakeAgents(probe_seen=True), "resize",
                    {"uuid": inst["uuid"], "flavor": "b"}, mocker)
        assert task["state"] == "done"
        assert cm.placement.place.call_args.kwargs["ignore_hosts"] == ()
    finally:
        CONF.clear_override("allow_resize_to_same_host", "compute")


def test_auto_confirm_confirms_only_due_resized_instances(store, mocker):
    inst = _placed(store)
    mig = store.create_migration(inst["uuid"], "migration", "h1", "h2",
                                 status=states.MIG_FINISHED)
    store.update_instance(inst["uuid"], vm_state=states.RESIZED)
    admission = mocker.Mock()
    svc = types.SimpleNamespace(store=store, hosts=FakeAgents(),
                                admission=admission)
    CONF.set_override("resize_confirm_window", 60, "compute")
    try:
        soon = periodic._time(mig["updated_at"]) + \
            datetime.timedelta(seconds=59)
        periodic.auto_confirm(svc, now=soon)
        admission.submit.assert_not_called()
        periodic.auto_confirm(svc, now=soon + datetime.timedelta(seconds=1))
        admission.submit.assert_called_once_with("resize-confirm",
                                                 inst["uuid"])
    finally:
        CONF.clear_override("resize_confirm_window", "compute")


def test_delete_in_verify_resize_confirms_first(store, mocker):
    """Nothing is left on the source: its domain and <uuid>_resize go, and
    every claim (source and destination) is released."""
    inst = _placed(store)
    agents = FakeAgents()
    _run(store, agents, "resize", {"uuid": inst["uuid"], "flavor": "b"},
         mocker)
    assert store.get_instance(inst["uuid"])["status"] == "VERIFY_RESIZE"
    agents.calls.clear()
    task = _run(store, agents, "delete", {"uuid": inst["uuid"]}, mocker)
    assert task["state"] == "done", task
    assert agents.calls == [
        ("h1", "instance.destroy"), ("h1", "instance.undefine"),
        ("h1", "move.discard"),
        ("h2", "instance.destroy"), ("h2", "instance.undefine"),
        ("h2", "instance.cleanup")]
    assert _allocs(store) == []
    assert store.list_migrations(instance_uuid=inst["uuid"])[0]["status"] \
        == "confirmed"
