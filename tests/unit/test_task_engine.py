"""The task engine: steps in order, undo in reverse, resume after restart."""
import pytest

from agent.controller.tasks.engine import TaskEngine
from agent.controller.tasks.workflow import Step, Workflow


class MemoryLog:
    """The task-log interface the engine needs, kept in memory."""

    def __init__(self):
        self.tasks, self.steps = {}, {}

    def task_create(self, kind, params, instance_uuid=None):
        tid = len(self.tasks) + 1
        self.tasks[tid] = {"id": tid, "kind": kind, "params": params,
                           "state": "running", "error": None,
                           "progress": None}
        self.steps[tid] = []
        return tid

    def task_get(self, tid):
        return dict(self.tasks[tid])

    def tasks_unfinished(self):
        return [t for t, v in self.tasks.items()
                if v["state"] in ("running", "undoing")]

    def steps_get(self, tid):
        return [dict(s) for s in self.steps[tid]]

    def _step(self, tid, name):
        return next(s for s in self.steps[tid] if s["name"] == name)

    def step_started(self, tid, index, name):
        if not any(s["name"] == name for s in self.steps[tid]):
            self.steps[tid].append({"index": index, "name": name,
                                    "state": "started", "data": None})
        self._step(tid, name)["state"] = "started"

    def step_done(self, tid, name, data):
        self._step(tid, name).update(state="done", data=data)

    def step_failed(self, tid, name, error):
        self._step(tid, name).update(state="failed", error=error)

    def step_undone(self, tid, name):
        self._step(tid, name)["state"] = "undone"

    def task_finish(self, tid, state, error=None):
        self.tasks[tid].update(state=state, error=error)

    def task_progress(self, tid, message):
        self.tasks[tid]["progress"] = message


def make(calls, fail_at=None, resume="forward", crash_at=None):
    def do(name):
        def f(ctx):
            calls.append(("do", name))
            if name == crash_at:
                raise SystemExit("controller killed")
            if name == fail_at:
                raise RuntimeError(f"{name} broke\nsecond line")
            return {f"{name}_out": ctx.get("seed", 0) + 1}
        return f

    def undo(name):
        return lambda ctx: calls.append(("undo", name))

    failures = []
    wf = Workflow("demo", [Step(n, do(n), undo(n)) for n in "abcd"],
                  resume=resume,
                  on_failed=lambda ctx, err: failures.append(str(err)))
    return wf, failures


def engine(log, workflow):
    return TaskEngine(log, {"demo": lambda params: workflow}, services=None,
                      max_workers=1)


def test_steps_run_in_order_and_share_data():
    log, calls = MemoryLog(), []
    wf, _ = make(calls)
    tid = engine(log, wf).run_sync("demo", {"seed": 41})
    assert calls == [("do", n) for n in "abcd"]
    assert log.tasks[tid]["state"] == "done"
    assert log.steps[tid][0]["data"] == {"a_out": 42}


def test_failure_undoes_failed_and_earlier_steps_newest_first():
    log, calls = MemoryLog(), []
    wf, failures = make(calls, fail_at="c")
    tid = engine(log, wf).run_sync("demo", {})
    assert calls == [("do", "a"), ("do", "b"), ("do", "c"),
                     ("undo", "c"), ("undo", "b"), ("undo", "a")]
    assert log.tasks[tid] == {**log.tasks[tid], "state": "failed",
                              "error": "c broke"}
    assert failures == ["c broke\nsecond line"]
    assert [s["state"] for s in log.steps[tid]] == ["undone"] * 3


def _crash(calls, resume):
    log = MemoryLog()
    wf, failures = make(calls, crash_at="c", resume=resume)
    with pytest.raises(SystemExit):
        engine(log, wf)._run_task(log.task_create("demo", {}))
    return log, failures


def test_restart_resumes_forward_from_the_step_in_flight():
    calls = []
    log, _ = _crash(calls, "forward")
    calls.clear()
    wf, _ = make(calls, resume="forward")
    eng = engine(log, wf)
    assert eng.resume_all() == [1]
    eng.shutdown()
    assert calls == [("do", "c"), ("do", "d")]
    assert log.tasks[1]["state"] == "done"


def test_restart_undoes_when_the_workflow_says_so():
    calls = []
    log, _ = _crash(calls, "undo")
    calls.clear()
    wf, failures = make(calls, resume="undo")
    eng = engine(log, wf)
    eng.resume_all()
    eng.shutdown()
    assert calls == [("undo", "c"), ("undo", "b"), ("undo", "a")]
    assert log.tasks[1]["state"] == "failed"
    assert failures == ["controller restarted while the task ran"]


def test_failed_undo_stops_and_is_reported():
    log, calls = MemoryLog(), []
    wf, failures = make(calls, fail_at="c")
    broken = Step("b", wf.steps[1].do, lambda ctx: 1 / 0)
    wf.steps[1] = broken
    tid = engine(log, wf).run_sync("demo", {})
    assert ("undo", "a") not in calls
    assert "undo failed: division by zero" in log.tasks[tid]["error"]
    assert failures == ["division by zero"]


def test_duplicate_step_names_are_refused():
    with pytest.raises(ValueError):
        Workflow("x", [Step("a", None), Step("a", None)])
