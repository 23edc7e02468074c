"""Boot and delete as workflows over a real store and the simulated
fleet: steps in order, undo newest first on failure, nothing held
afterwards."""
import time

import pytest

from agent.common.errors import DroverError
from agent.controller import states
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    yield lab
    lab.close()


def boot(lab, name="vm", **params):
    task = lab.boot(name, **params)
    return lab.store.get_instance(name), task


def methods(lab):
    return [m for _, m in lab.fleet.calls]


def test_boot_places_claims_and_runs_every_step(lab):
    inst, task = boot(lab)
    assert task["state"] == "done"
    assert inst["status"] == "ACTIVE" and inst["power_state"] == \
        states.RUNNING
    assert methods(lab) == ["image.status", "image.commit",
                            "instance.prepare", "instance.define",
                            "instance.start"]
    assert lab.domains() == [("vm", inst["host"], "running")]
    assert lab.directories() == [(f"local/{inst['host']}", "vm")]
    alloc = lab.store.list_allocations(consumer=inst["uuid"])
    assert [(a["host"], a["ram_mb"]) for a in alloc] == [(inst["host"],
                                                         256)]
    events = lab.store.list_actions(inst["uuid"])[0]["events"]
    assert [e["event"] for e in events] == [
        "boot_schedule", "boot_image", "boot_disk", "boot_define",
        "boot_start", "boot_active"]
    assert {e["result"] for e in events} == {"Success"}
    # A second boot there finds the image in the host's cache.
    boot(lab, "vm2", host=inst["host"])
    assert methods(lab)[5:7] == ["image.status", "instance.prepare"]


def test_failed_start_undoes_in_reverse_and_holds_nothing(lab):
    for host in ("h1", "h2"):
        lab.fleet.fail(host, "instance.start",
                       DroverError(f"instance.start refused on {host}"))
    inst, task = boot(lab)
    host = lab.fleet.calls[0][0]
    assert task["state"] == "failed"
    assert task["error"] == f"instance.start refused on {host}"
    assert methods(lab)[-3:] == [
        "instance.destroy", "instance.undefine", "instance.cleanup"]
    assert inst["status"] == "ERROR" and "refused" in inst["error"]
    assert inst["host"] is None
    assert lab.store.list_allocations(consumer=inst["uuid"]) == []
    assert lab.domains() == [] and lab.directories() == []
    action = lab.store.list_actions(inst["uuid"])[0]
    assert action["finish_time"] and "refused" in action["message"]
    assert [e["result"] for e in action["events"]][-1] == "Error"


def test_forced_host_and_spread(lab):
    first, _ = boot(lab, "a", host="h2")
    second, _ = boot(lab, "b")
    assert first["host"] == "h2"
    assert second["host"] == "h1"       # spread: the emptier host


def test_no_valid_host_leaves_error_with_reasons(lab):
    lab.store.disable_host("h1", "maintenance")
    lab.store.mark_host_down("h2")
    inst, task = boot(lab)
    assert inst["status"] == "ERROR"
    assert inst["error"].startswith("No valid host was found")
    assert "h1" in inst["error"] and "h2" in inst["error"]
    assert lab.fleet.calls == []


def test_delete_releases_everything(lab):
    inst, _ = boot(lab)
    lab.op("delete", "vm")
    assert methods(lab)[-3:] == [
        "instance.destroy", "instance.undefine", "instance.cleanup"]
    assert lab.store.list_allocations(consumer=inst["uuid"]) == []
    assert lab.store.list_instances() == []
    assert lab.domains() == [] and lab.directories() == []


def test_task_wait_returns_on_progress_or_end(lab):
    from agent.controller.api.servers import task_wait
    lab.use_real_clock()
    svc = lab.svc
    tid = svc.store.task_create("boot", {"uuid": "x"})
    svc.store.task_progress(tid, "scheduling")
    assert task_wait(svc, tid, progress=None)["progress"] == "scheduling"
    started = time.monotonic()
    same = task_wait(svc, tid, progress="scheduling", timeout=0.3)
    assert same["state"] == "running" and time.monotonic() - started >= 0.3
    svc.store.task_finish(tid, "done")
    assert task_wait(svc, tid, progress="scheduling")["state"] == "done"


def test_task_wait_is_woken_by_a_change_of_the_task(lab):
    """task.wait sleeps on the store's change notice, not on polls: a
    change made in another thread wakes it; no change, no wake-up."""
    import threading
    from agent.controller.api.servers import task_wait
    lab.use_real_clock()
    store = lab.svc.store
    tid = store.task_create("boot", {"uuid": "x"})
    seen = store.task_generation()
    assert not store.wait_task_change(seen, 0.05)
    threading.Timer(0.05, store.task_progress, (tid, "placing")).start()
    assert store.wait_task_change(seen, 30)
    assert task_wait(lab.svc, tid, progress=None)["progress"] == "placing"
    seen = store.task_generation()
    threading.Timer(0.05, store.task_finish, (tid, "done")).start()
    assert store.wait_task_change(seen, 30)
    assert task_wait(lab.svc, tid, progress="placing")["state"] == "done"
