"""Cold migration and resize: the pure decisions, the claims bookkeeping
of confirm and revert, and the workflow and its undo on the simulated
fleet."""
import datetime
import types

import pytest

from agent.common.errors import DroverError, InvalidInput
from agent.conf import CONF
from agent.controller import periodic, states
from agent.controller.db import Store, upgrade
from agent.controller.ops import cold_migrate as cm
from agent.controller.ops import resize_confirm
from sim_helpers import SimLab

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


def _steps(*states_, data=None):
    return [{"state": st, "data": data} for st in states_]


def test_undo_complete_only_when_every_step_ran_back():
    assert cm.undo_complete(_steps("undone", "undone"))
    assert not cm.undo_complete(_steps("undone", "done", "undone"))
    assert not cm.undo_complete(_steps("failed"))
    # Skipped with a leftover recorded (a copy on an unreachable host):
    # the instance is back all the same; skipped without one (a start or
    # restore on an unreachable source): not.
    left = {"host": "h2", "leftover": {"remove": ["files"]}}
    assert cm.undo_complete(_steps("undone", "skipped", data=left))
    assert not cm.undo_complete(_steps("skipped", data={"host": "h1",
                                                        "leftover": None}))


def test_a_rollback_is_finished_later_only_on_local_storage():
    assert cm.rollback_possible("local", "h1", "h2")
    assert not cm.rollback_possible("shared", "h1", "h2")
    assert not cm.rollback_possible("local", "h1", "h1")
    assert not cm.rollback_possible("local", "h1", None)


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


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    yield lab
    lab.close()


def test_resize_ends_in_verify_resize_with_the_claim_on_the_dest(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    task = lab.op("resize", "vm1", flavor="big")
    assert task["state"] == "done", task
    after = lab.store.get_instance("vm1")
    assert (after["status"], after["host"], after["flavor"]["name"],
            after["old_flavor"]["name"]) == ("VERIFY_RESIZE", "h2", "big",
                                             "small")
    assert lab.migrations() == [("vm1", "resize", "finished", "h1", "h2")]
    assert lab.claims() == [("h1", "vm1", 1, 256), ("h2", "mig:vm1", 2, 512)]
    assert ("h1", "move.copy_start") in lab.fleet.calls
    # The guest runs on the destination; the source keeps its files.
    assert lab.domains() == [("vm1", "h1", "shutoff"),
                             ("vm1", "h2", "running")]
    assert lab.directories() == [("local/h1", "vm1_resize"),
                                 ("local/h2", "vm1")]

    task = lab.op("revert", "vm1")
    assert task["state"] == "done", task
    back = lab.store.get_instance("vm1")
    assert (back["status"], back["host"], back["flavor"]["name"]) == \
        ("ACTIVE", "h1", "small")
    assert lab.claims() == [("h1", "vm1", 1, 256)]
    assert lab.fleet.calls[-2:] == [("h1", "instance.define"),
                                    ("h1", "instance.start")]
    assert lab.domains() == [("vm1", "h1", "running")]
    assert lab.directories() == [("local/h1", "vm1")]


def test_failed_define_undoes_back_to_the_source(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    lab.fleet.fail("h2", "instance.define",
                   DroverError("domain already exists"))
    task = lab.op("migrate", "vm1")
    assert task["state"] == "failed"
    after = lab.store.get_instance("vm1")
    assert (after["status"], after["host"]) == ("ACTIVE", "h1")
    assert "already exists" in after["error"]
    calls = lab.fleet.calls
    undo = calls[calls.index(("h2", "instance.define")) + 1:]
    assert undo == [("h2", "instance.undefine"), ("h2", "instance.cleanup"),
                    ("h1", "move.restore"), ("h1", "instance.define"),
                    ("h1", "instance.start")]
    assert lab.claims() == [("h1", "vm1", 1, 256)]
    assert lab.migrations()[0][2] == "error"
    assert lab.domains() == [("vm1", "h1", "running")]
    assert lab.directories() == [("local/h1", "vm1")]


def test_unreachable_destination_leaves_a_recorded_leftover(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    lab.fleet.at_step("disk", lambda f: f.cut("h2"))
    task = lab.op("migrate", "vm1")
    assert task["state"] == "failed"
    assert lab.store.get_instance("vm1")["status"] == "ACTIVE"
    assert [(c["host"], c["remove"]) for c in lab.store.list_cleanups()] \
        == [("h2", ["files"])]
    assert lab.claims() == [("h1", "vm1", 1, 256)]
    assert ("local/h2", "vm1") in lab.directories()
    # Once h2 answers, its poll removes the copy (and forgets it).
    lab.fleet.restore("h2")
    lab.fleet.poll()
    assert ("h2", "instance.cleanup") in lab.fleet.calls[-4:]
    assert lab.store.list_cleanups() == []
    assert lab.directories() == [("local/h1", "vm1")]


def test_unreachable_source_rollback_finished_when_it_answers(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    lab.fleet.at_step("copy", lambda f: f.power_off("h1"))
    assert lab.op("migrate", "vm1")["state"] == "failed"
    inst = lab.store.get_instance("vm1")
    assert (inst["status"], inst["host"]) == ("ERROR", "h1")
    assert lab.claims() == [("h1", "vm1", 1, 256)]      # h2's released
    assert lab.directories() == [("local/h1", "vm1_resize")]
    periodic.finish_rollbacks(lab.svc)                  # h1 still off
    assert lab.directories() == [("local/h1", "vm1_resize")]
    lab.fleet.power_on("h1")
    periodic.finish_rollbacks(lab.svc)
    inst = lab.store.get_instance("vm1")
    assert (inst["status"], inst["host"]) == ("SHUTOFF", "h1")
    assert lab.directories() == [("local/h1", "vm1")]
    assert lab.domains() == [("vm1", "h1", "shutoff")]
    lab.fleet.calls.clear()
    periodic.finish_rollbacks(lab.svc)                  # done once
    assert lab.fleet.calls == []
    assert lab.op("start", "vm1")["state"] == "done"


def test_failed_undo_leaves_error_with_an_event(lab):
    assert lab.boot("vm1", host="h1", storage="shared")["state"] == "done"
    lab.fleet.fail("h2", "move.finish_disk", DroverError("boom"))
    lab.fleet.fail("h1", "move.restore", DroverError("disk gone"))
    task = lab.op("migrate", "vm1")
    assert task["state"] == "failed"
    assert lab.store.get_instance("vm1")["status"] == "ERROR"
    action, = [a for a in lab.store.list_actions(lab.uuid("vm1"))
               if a["action"] == "migrate"]
    events = action["events"]
    assert events[-1]["event"] == "migrate_error"
    assert "kept on h1" in events[-1]["details"]
    # The data is kept: the original in <uuid>_resize on the shared storage.
    assert lab.directories() == [("shared", "vm1_resize")]


def test_same_host_resize_allowed_by_option(tmp_path):
    CONF.set_override("allow_resize_to_same_host", True, "compute")
    lab = SimLab(tmp_path, hosts=("h1",))
    try:
        assert lab.boot("vm1", host="h1")["state"] == "done"
        task = lab.op("resize", "vm1", flavor="big")
        assert task["state"] == "done"
        assert lab.migrations() == [("vm1", "resize", "finished", "h1",
                                     "h1")]
        assert lab.domains() == [("vm1", "h1", "running")]
        assert lab.fleet.host("h1").domains[lab.uuid("vm1")].vcpus == 2
    finally:
        lab.close()
        CONF.clear_override("allow_resize_to_same_host", "compute")


def test_auto_confirm_confirms_only_due_resized_instances(store, mocker):
    inst = _placed(store)
    mig = store.create_migration(inst["uuid"], "migration", "h1", "h2",
                                 status=states.MIG_FINISHED)
    store.update_instance(inst["uuid"], vm_state=states.RESIZED)
    admission = mocker.Mock()
    svc = types.SimpleNamespace(store=store, hosts=None, admission=admission)
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


def test_delete_in_verify_resize_confirms_first(lab):
    """Nothing is left on the source: its domain and <uuid>_resize go, and
    every claim (source and destination) is released."""
    assert lab.boot("vm1", host="h1")["state"] == "done"
    lab.op("resize", "vm1", flavor="big")
    assert lab.store.get_instance("vm1")["status"] == "VERIFY_RESIZE"
    lab.fleet.calls.clear()
    task = lab.op("delete", "vm1")
    assert task["state"] == "done", task
    assert lab.fleet.calls == [
        ("h1", "instance.destroy"), ("h1", "instance.undefine"),
        ("h1", "move.discard"),
        ("h2", "instance.destroy"), ("h2", "instance.undefine"),
        ("h2", "instance.cleanup")]
    assert lab.claims() == []
    assert lab.migrations()[0][2] == "confirmed"
    assert lab.domains() == [] and lab.directories() == []


def test_failed_revert_keeps_reverting_and_is_run_again(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    assert lab.op("resize", "vm1", host="h2", flavor="big")["state"] == \
        "done"
    lab.fleet.at_step("restore", lambda f: f.cut("h1"))
    assert lab.op("revert", "vm1")["state"] == "failed"
    inst = lab.store.get_instance("vm1")
    assert (inst["status"], inst["host"]) == ("VERIFY_RESIZE", "h2")
    assert "h1" in inst["error"]
    assert lab.migrations()[0][2] == "reverting"       # owns both hosts
    assert lab.directories() == [("local/h1", "vm1_resize")]
    lab.fleet.restore("h1")
    periodic.retry_reverts(lab.svc)
    inst = lab.store.get_instance("vm1")
    assert (inst["status"], inst["host"], inst["flavor"]["name"]) == \
        ("ACTIVE", "h1", "small")
    assert lab.migrations()[0][2] == "reverted"
    assert lab.domains() == [("vm1", "h1", "running")]
    assert lab.claims() == [("h1", "vm1", 1, 256)]
    periodic.retry_reverts(lab.svc)                     # nothing left
    assert len(lab.store.list_tasks()) == 4


def test_revert_failing_before_its_commit_point_changes_nothing(lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    assert lab.op("resize", "vm1", host="h2", flavor="big")["state"] == \
        "done"
    lab.fleet.at_step("destroy", lambda f: f.cut("h2"))
    assert lab.op("revert", "vm1")["state"] == "failed"
    inst = lab.store.get_instance("vm1")
    assert (inst["status"], inst["host"]) == ("VERIFY_RESIZE", "h2")
    assert lab.migrations()[0][2] == "finished"
    lab.fleet.restore("h2")
    assert lab.op("confirm", "vm1")["state"] == "done"


def test_rollback_of_a_deleted_instance_leaves_its_copy_to_the_cleanups(
        lab):
    assert lab.boot("vm1", host="h1")["state"] == "done"
    lab.fleet.at_step("start", lambda f: f.cut("h2"))
    assert lab.op("migrate", "vm1")["state"] == "failed"
    assert lab.op("delete", "vm1")["state"] == "done"
    periodic.finish_rollbacks(lab.svc)          # h2 still cut: recorded
    assert [(c["host"], c["remove"]) for c in lab.store.list_cleanups()] \
        == [("h2", ["domain", "files"])]
    lab.fleet.restore("h2")
    lab.fleet.poll()
    assert lab.store.list_cleanups() == []
    assert not [d for d in lab.directories() if d[0] == "local/h2"]
    assert not [d for d in lab.domains() if d[1] == "h2"]


def test_a_failing_revert_is_retried_with_a_growing_wait_then_left():
    t0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
    assert periodic.retry_due(0, None, t0)                  # first: at once
    assert not periodic.retry_due(1, "2026-01-01T12:00:00Z",
                                  t0 + datetime.timedelta(seconds=9))
    assert periodic.retry_due(1, "2026-01-01T12:00:00Z",
                              t0 + datetime.timedelta(seconds=10))
    assert not periodic.retry_due(3, "2026-01-01T12:00:00Z",
                                  t0 + datetime.timedelta(seconds=39))
    assert periodic.retry_due(3, "2026-01-01T12:00:00Z",
                              t0 + datetime.timedelta(seconds=40))
    far = t0 + datetime.timedelta(days=30)
    assert not periodic.retry_due(periodic.REVERT_RETRY_LIMIT,
                                  "2026-01-01T12:00:00Z", far)
