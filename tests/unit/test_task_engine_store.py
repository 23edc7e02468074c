"""The task engine over the real store, on SQLite and on PostgreSQL: the
task log survives a controller's death, and the next controller resumes
(or undoes) what was in flight; a task that ends gives its instance up."""
import pytest

from agent.controller.db import Store
from agent.controller.tasks.engine import TaskEngine
from agent.controller.tasks.workflow import Step, Workflow


@pytest.fixture
def store(store_url):
    st = Store(store_url)
    yield st
    st.close()


def _workflow(calls, crash_at=None, fail_at=None, resume="forward"):
    def do(name):
        def f(ctx):
            calls.append(("do", name))
            if name == crash_at:
                raise SystemExit("controller killed")
            if name == fail_at:
                raise RuntimeError(f"{name} broke")
            return {f"{name}_out": len(calls)}
        return f

    def undo(name):
        return lambda ctx: calls.append(("undo", name))

    return Workflow("demo", [Step(n, do(n), undo(n)) for n in "abc"],
                    resume=resume)


def _engine(store, workflow):
    return TaskEngine(store, {"demo": lambda params: workflow},
                      services=None, max_workers=1)


def _states(store, tid):
    return [s["state"] for s in store.steps_get(tid)]


def test_a_task_killed_mid_step_is_resumed_forward(store):
    calls = []
    tid = store.task_create("demo", {})
    with pytest.raises(SystemExit):
        _engine(store, _workflow(calls, crash_at="b"))._run_task(tid)
    assert store.task_get(tid)["state"] == "running"
    assert _states(store, tid) == ["done", "started"]
    calls.clear()
    eng = _engine(store, _workflow(calls))
    assert eng.resume_all() == [tid]
    eng.shutdown()
    assert calls == [("do", "b"), ("do", "c")]
    assert store.task_get(tid)["state"] == "done"
    assert store.steps_get(tid)[0]["data"] == {"a_out": 1}


def test_a_task_killed_mid_step_is_undone_when_its_workflow_says(store):
    calls = []
    tid = store.task_create("demo", {})
    with pytest.raises(SystemExit):
        _engine(store, _workflow(calls, crash_at="b",
                                 resume="undo"))._run_task(tid)
    calls.clear()
    eng = _engine(store, _workflow(calls, resume="undo"))
    eng.resume_all()
    eng.shutdown()
    assert calls == [("undo", "b"), ("undo", "a")]
    assert store.task_get(tid)["state"] == "failed"
    assert _states(store, tid) == ["undone", "undone"]


def test_a_failed_task_undoes_and_frees_its_instance(store):
    store.create_flavor("small", 1, 512, 1)
    store.create_image("img", "/images/img.qcow2", "qcow2", 1 << 30, 1 << 20)
    inst = store.create_instance("vm1", "small", "img")
    _, tid = store.admit_task("demo", {}, inst["uuid"])
    calls = []
    _engine(store, _workflow(calls, fail_at="c")).run(tid)
    assert calls[-3:] == [("undo", "c"), ("undo", "b"), ("undo", "a")]
    assert store.task_get(tid)["state"] == "failed"
    assert store.get_instance("vm1")["task_id"] is None
