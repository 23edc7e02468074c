"""Rescue and unrescue as workflows over a real store and the simulated
fleet: the instance's own disk kept and attached, one domain at all times,
the original back after a failure, a controller restart resumed."""
import datetime

import pytest

from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.controller import periodic, states
from agent.sim.fleet import ControllerCrash
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    assert lab.boot("vm", host="h1")["state"] == "done"
    lab.fleet.calls.clear()
    yield lab
    lab.close()


def dom(lab):
    return lab.fleet.host("h1").domains[lab.uuid("vm")]


def disk(lab):
    return lab.fleet.world.dirs(lab.fleet.host("h1"), "local")[lab.uuid("vm")]


def methods(lab):
    return [m for _, m in lab.fleet.calls]


def assert_own_disk_intact(lab):
    assert disk(lab).data == f"data-{lab.uuid('vm')}"


def test_rescue_boots_the_rescue_domain_over_the_own_disk(lab):
    had = lab.guests_with_data()
    task = lab.op("rescue", "vm")
    assert task["state"] == "done", task
    inst = lab.store.get_instance("vm")
    assert (inst["status"], inst["host"], inst["power_state"]) == \
        ("RESCUE", "h1", states.RUNNING)
    assert methods(lab) == ["image.status", "instance.rescue_disk",
                            "instance.stop", "instance.rescue_define",
                            "instance.start"]
    # One domain, the instance's own (same UUID), booted as the rescue.
    assert lab.domains() == [("vm", "h1", "running")]
    assert dom(lab).rescue and disk(lab).rescue == \
        "/var/lib/drover/images/" + lab.store.get_image("img")["uuid"]
    assert_own_disk_intact(lab)
    assert lab.judge(had) == []


def test_unrescue_boots_the_original_and_removes_the_overlay(lab):
    had = lab.guests_with_data()
    lab.op("rescue", "vm")
    lab.fleet.calls.clear()
    task = lab.op("unrescue", "vm")
    assert task["state"] == "done", task
    assert methods(lab) == ["instance.destroy", "instance.define",
                            "instance.start", "instance.rescue_cleanup"]
    assert lab.store.get_instance("vm")["status"] == "ACTIVE"
    assert lab.domains() == [("vm", "h1", "running")]
    assert not dom(lab).rescue and disk(lab).rescue is None
    assert_own_disk_intact(lab)
    assert lab.judge(had) == []


def test_rescue_of_a_stopped_instance_and_one_in_error(lab):
    lab.op("stop", "vm")
    assert lab.op("rescue", "vm")["state"] == "done"
    assert lab.store.get_instance("vm")["status"] == "RESCUE"
    assert lab.op("unrescue", "vm")["state"] == "done"
    assert lab.store.get_instance("vm")["status"] == "ACTIVE"
    lab.store.update_instance(lab.uuid("vm"), vm_state=states.ERROR)
    assert lab.op("rescue", "vm")["state"] == "done"
    assert lab.store.get_instance("vm")["status"] == "RESCUE"
    assert lab.judge() == []


def test_rescue_on_shared_storage(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    try:
        lab.boot("vm", host="h1", storage="shared")
        assert lab.op("rescue", "vm")["state"] == "done"
        shared = lab.fleet.world.dirs(lab.fleet.host("h1"), "shared")
        assert shared[lab.uuid("vm")].rescue is not None
        assert lab.op("unrescue", "vm")["state"] == "done"
        assert shared[lab.uuid("vm")].rescue is None
        assert lab.judge() == []
    finally:
        lab.close()


def test_image_asked_for_else_the_option_else_the_own(lab):
    other = lab.store.create_image("rescue-img", "/images/r", "qcow2",
                                   1 << 30, 1 << 24, checksum="y")
    lab.op("rescue", "vm", image="rescue-img")
    assert disk(lab).rescue.endswith(other["uuid"])
    lab.op("unrescue", "vm")
    CONF.set_override("rescue_image", "rescue-img", "compute")
    try:
        lab.op("rescue", "vm")
        assert disk(lab).rescue.endswith(other["uuid"])
    finally:
        CONF.clear_override("rescue_image", "compute")


def test_unknown_image_is_refused_before_anything(lab):
    with pytest.raises(NotFound):
        lab.op("rescue", "vm", image="no-such-image")
    assert lab.fleet.calls == []
    assert lab.store.get_instance("vm")["status"] == "ACTIVE"


@pytest.mark.parametrize("verb,params", [
    ("migrate", {}), ("resize", {"flavor": "big"}), ("live", {}),
    ("stop", {}), ("start", {}), ("reboot", {"hard": True}),
    ("rescue", {}), ("snapshot", {"image_name": "snap"}), ("shelve", {})])
def test_refused_while_rescued(lab, verb, params):
    lab.op("rescue", "vm")
    lab.fleet.calls.clear()
    with pytest.raises(Conflict) as err:
        lab.op(verb, "vm", **params)
    assert "\n" not in str(err.value) and "vm" in str(err.value)
    assert lab.fleet.calls == []
    assert lab.store.get_instance("vm")["status"] == "RESCUE"


def test_unrescue_refused_unless_rescued(lab):
    with pytest.raises(Conflict, match="vm_state active"):
        lab.op("unrescue", "vm")


def test_delete_while_rescued_leaves_nothing(lab):
    lab.op("rescue", "vm")
    assert lab.op("delete", "vm")["state"] == "done"
    assert lab.domains() == [] and lab.directories() == []
    assert lab.claims() == []


@pytest.mark.parametrize("stopped", [False, True])
def test_rescue_that_cannot_start_puts_the_original_back(lab, stopped):
    if stopped:
        lab.op("stop", "vm")
    lab.fleet.calls.clear()
    lab.fleet.fail("h1", "instance.start",
                   DroverError("rescue disk will not boot"))
    task = lab.op("rescue", "vm")
    assert task["state"] == "failed"
    inst = lab.store.get_instance("vm")
    assert inst["status"] == ("SHUTOFF" if stopped else "ACTIVE")
    assert "will not boot" in inst["error"]
    undo = methods(lab)[methods(lab).index("instance.start") + 1:]
    assert undo == ["instance.destroy", "instance.define"] + \
        ([] if stopped else ["instance.start"]) + \
        ["instance.rescue_cleanup"]
    assert not dom(lab).rescue and disk(lab).rescue is None
    assert lab.domains() == [("vm", "h1",
                              "shutoff" if stopped else "running")]
    assert_own_disk_intact(lab)
    assert lab.judge() == []


def test_rescue_whose_undo_fails_is_left_in_error(lab):
    lab.fleet.fail("h1", "instance.start", DroverError("no boot"))
    lab.fleet.fail("h1", "instance.define", DroverError("no define"))
    assert lab.op("rescue", "vm")["state"] == "failed"
    inst = lab.store.get_instance("vm")
    assert inst["status"] == "ERROR" and "no define" in inst["error"]
    assert_own_disk_intact(lab)


def test_unrescue_failing_before_its_commit_stays_rescued(lab):
    lab.op("rescue", "vm")
    lab.fleet.fail("h1", "instance.define", DroverError("no define"))
    task = lab.op("unrescue", "vm")
    assert task["state"] == "failed"
    inst = lab.store.get_instance("vm")
    assert inst["status"] == "RESCUE" and "no define" in inst["error"]
    assert dom(lab).rescue and dom(lab).running
    assert lab.judge() == []


def test_unrescue_failing_after_its_commit_is_error_not_rescue(lab):
    lab.op("rescue", "vm")
    lab.fleet.fail("h1", "instance.start", DroverError("no boot"))
    assert lab.op("unrescue", "vm")["state"] == "failed"
    inst = lab.store.get_instance("vm")
    assert inst["status"] == "ERROR"
    assert not dom(lab).rescue and not dom(lab).running
    assert_own_disk_intact(lab)
    # The operator starts it from ERROR (reboot --hard): its own disk.
    assert lab.op("reboot", "vm", hard=True)["state"] == "done"
    assert lab.store.get_instance("vm")["status"] == "ACTIVE"
    assert not dom(lab).rescue and dom(lab).running
    assert lab.judge() == []


def crash_at(lab, kind, step):
    def boom(fleet):
        raise ControllerCrash()
    lab.fleet.at_step(step, boom, kind=kind, when="done")


@pytest.mark.parametrize("step", ["disk", "shutdown", "define", "start"])
def test_controller_killed_mid_rescue_resumes_it(lab, step):
    had = lab.guests_with_data()
    crash_at(lab, "rescue", step)
    assert lab.op("rescue", "vm") is None and lab.crashed
    lab.restart_controller()
    inst = lab.store.get_instance("vm")
    assert (inst["status"], inst["task_state"]) == ("RESCUE", None)
    assert dom(lab).rescue and dom(lab).running
    assert lab.judge(had) == []


@pytest.mark.parametrize("step", ["destroy", "define", "start", "cleanup"])
def test_controller_killed_mid_unrescue_resumes_it(lab, step):
    had = lab.guests_with_data()
    lab.op("rescue", "vm")
    crash_at(lab, "unrescue", step)
    assert lab.op("unrescue", "vm") is None and lab.crashed
    lab.restart_controller()
    inst = lab.store.get_instance("vm")
    assert (inst["status"], inst["task_state"]) == ("ACTIVE", None)
    assert not dom(lab).rescue and dom(lab).running
    assert disk(lab).rescue is None
    assert lab.judge(had) == []


def test_rescue_timeout_unrescues_once_due(lab):
    lab.op("rescue", "vm")
    done = lab.store.list_tasks(instance_uuid=lab.uuid("vm"))[-1]
    at = periodic._time(done["updated_at"])
    CONF.set_override("rescue_timeout", 600, "compute")
    try:
        periodic.auto_unrescue(lab.svc, now=at + datetime.timedelta(
            seconds=599))
        assert lab.store.get_instance("vm")["status"] == "RESCUE"
        periodic.auto_unrescue(lab.svc, now=at + datetime.timedelta(
            seconds=600))
        assert lab.store.get_instance("vm")["status"] == "ACTIVE"
    finally:
        CONF.clear_override("rescue_timeout", "compute")
    assert lab.judge() == []


def test_rescue_timeout_zero_never_unrescues(lab):
    lab.op("rescue", "vm")
    periodic.auto_unrescue(lab.svc, now=datetime.datetime(2999, 1, 1))
    assert lab.store.get_instance("vm")["status"] == "RESCUE"


def test_due_for_unrescue():
    t0 = datetime.datetime(2026, 1, 1)
    later = t0 + datetime.timedelta(seconds=30)
    assert periodic.due_for_unrescue(t0, later, 30)
    assert not periodic.due_for_unrescue(t0, later, 31)
    assert not periodic.due_for_unrescue(t0, later, 0)
    assert not periodic.due_for_unrescue(None, later, 30)
