"""Boot and delete as workflows over a real store, with the agents faked:
steps in order, undo newest first on failure, nothing held afterwards."""
import time

import pytest

from agent.common.errors import DroverError
from agent.common.rpc.methods import AGENT, check_call
from agent.controller import states
from agent.controller.admission import Admission
from agent.controller.daemon import Services
from agent.controller.db import Store, upgrade
from agent.controller.ops import WORKFLOWS
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40}


class FakeAgents:
    """Records agent calls; ``fail`` names a method that raises."""

    def __init__(self, store):
        self.store = store
        self.calls = []
        self.fail = None

    def call(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)       # what AgentClient refuses
        self.calls.append((host, method))
        if method == self.fail:
            raise DroverError(f"{method} refused on {host}")
        if method == "image.status":
            return {"present": True, "path": "/cache/img", "upload_path": ""}
        if method == "instance.stop":
            return {"result": "shutdown"}
        return {}


@pytest.fixture
def svc(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2"):
        store.upsert_host(name, address=f"198.18.0.{len(name)}", facts=FACTS)
    store.create_flavor("small", 1, 1024, 1)
    store.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24,
                       checksum="x")
    s = Services(store=store, hosts=FakeAgents(store))
    s.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, s)
    s.admission = Admission(s)
    yield s
    store.close()


def boot(svc, name="vm", **params):
    inst, tid = svc.admission.create(name, "small", "img", **params)
    svc.engine.wait(tid)
    return svc.store.get_instance(inst["uuid"]), svc.store.task_get(tid)


def test_boot_places_claims_and_runs_every_step(svc):
    inst, task = boot(svc)
    assert task["state"] == "done"
    assert inst["status"] == "ACTIVE" and inst["power_state"] == \
        states.RUNNING
    assert [m for _, m in svc.hosts.calls] == [
        "image.status", "instance.prepare", "instance.define",
        "instance.start"]
    alloc = svc.store.list_allocations(consumer=inst["uuid"])
    assert [(a["host"], a["ram_mb"]) for a in alloc] == [(inst["host"],
                                                         1024)]
    events = svc.store.list_actions(inst["uuid"])[0]["events"]
    assert [e["event"] for e in events] == [
        "boot_schedule", "boot_image", "boot_disk", "boot_define",
        "boot_start", "boot_active"]
    assert {e["result"] for e in events} == {"Success"}


def test_failed_start_undoes_in_reverse_and_holds_nothing(svc):
    svc.hosts.fail = "instance.start"
    inst, task = boot(svc)
    assert task["state"] == "failed"
    assert task["error"] == \
        f"instance.start refused on {svc.hosts.calls[0][0]}"
    assert [m for _, m in svc.hosts.calls][-3:] == [
        "instance.destroy", "instance.undefine", "instance.cleanup"]
    assert inst["status"] == "ERROR" and "refused" in inst["error"]
    assert inst["host"] is None
    assert svc.store.list_allocations(consumer=inst["uuid"]) == []
    action = svc.store.list_actions(inst["uuid"])[0]
    assert action["finish_time"] and "refused" in action["message"]
    assert [e["result"] for e in action["events"]][-1] == "Error"


def test_forced_host_and_spread(svc):
    first, _ = boot(svc, "a", host="h2")
    second, _ = boot(svc, "b")
    assert first["host"] == "h2"
    assert second["host"] == "h1"       # spread: the emptier host


def test_no_valid_host_leaves_error_with_reasons(svc):
    svc.store.disable_host("h1", "maintenance")
    svc.store.mark_host_down("h2")
    inst, task = boot(svc)
    assert inst["status"] == "ERROR"
    assert inst["error"].startswith("No valid host was found")
    assert "h1" in inst["error"] and "h2" in inst["error"]
    assert svc.hosts.calls == []


def test_delete_releases_everything(svc):
    inst, _ = boot(svc)
    _, tid = svc.admission.submit("delete", inst["uuid"])
    svc.engine.wait(tid)
    assert [m for _, m in svc.hosts.calls][-3:] == [
        "instance.destroy", "instance.undefine", "instance.cleanup"]
    assert svc.store.list_allocations(consumer=inst["uuid"]) == []
    assert svc.store.list_instances() == []


def test_task_wait_returns_on_progress_or_end(svc):
    from agent.controller.api.servers import task_wait
    tid = svc.store.task_create("boot", {"uuid": "x"})
    svc.store.task_progress(tid, "scheduling")
    assert task_wait(svc, tid, progress=None)["progress"] == "scheduling"
    started = time.monotonic()
    same = task_wait(svc, tid, progress="scheduling", timeout=0.3)
    assert same["state"] == "running" and time.monotonic() - started >= 0.3
    svc.store.task_finish(tid, "done")
    assert task_wait(svc, tid, progress="scheduling")["state"] == "done"
