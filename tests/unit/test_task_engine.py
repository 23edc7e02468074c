"""The task engine: steps in order, undo in reverse, resume after restart."""
import pytest

from agent.common.errors import Conflict, HostGone, NotOwner
from agent.controller.tasks.engine import TaskEngine
from agent.controller.tasks.workflow import Step, Workflow


class MemoryLog:
    """The task-log interface the engine needs, kept in memory."""

    def __init__(self):
        self.tasks, self.steps = {}, {}
        self.leftovers = []

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

    def step_begin(self, tid, index, name, cancellable=True, done=None):
        if done is not None:
            self.step_done(tid, *done)
        task = self.tasks[tid]
        if task.get("superseded_by"):
            return {"interrupt": "superseded", "event_id": None}
        if task.get("cancel_requested") and cancellable:
            return {"interrupt": "cancelled", "event_id": None}
        if not any(s["name"] == name for s in self.steps[tid]):
            self.steps[tid].append({"index": index, "name": name,
                                    "state": "started", "data": None})
        self._step(tid, name)["state"] = "started"
        return {"interrupt": None, "event_id": None}

    def step_done(self, tid, name, data):
        self._step(tid, name).update(state="done", data=data)

    def step_failed(self, tid, name, error):
        self._step(tid, name).update(state="failed", error=error)

    def step_undone(self, tid, name):
        self._step(tid, name)["state"] = "undone"

    def task_finish(self, tid, state, error=None, done=None):
        if done is not None:
            self.step_done(tid, *done)
        self.tasks[tid].update(state=state, error=error)

    def task_progress(self, tid, message):
        self.tasks[tid]["progress"] = message

    def task_request_cancel(self, tid):
        self.tasks[tid]["cancel_requested"] = True

    def step_skipped(self, tid, name, data):
        self._step(tid, name).update(state="skipped", data=data)

    def record_leftover(self, tid, host, leftover, reason):
        self.leftovers.append((host, leftover))


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


# -- commit points, gone hosts, ownership, cancel ----------------------------

def _flow(calls, steps, resume="forward"):
    failures = []
    return Workflow("demo", steps, resume=resume,
                    on_failed=lambda ctx, err: failures.append(
                        (str(err), ctx.committed))), failures


def _do(calls, name, error=None):
    def f(ctx):
        calls.append(("do", name))
        if error is not None:
            raise error
    return f


def _undo(calls, name, error=None):
    def f(ctx):
        calls.append(("undo", name))
        if error is not None:
            raise error
    return f


def test_nothing_is_undone_after_a_commit_point():
    log, calls = MemoryLog(), []
    wf, failures = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", _do(calls, "b"), commit=True),
        Step("c", _do(calls, "c", RuntimeError("c broke")))])
    tid = engine(log, wf).run_sync("demo", {})
    assert calls == [("do", "a"), ("do", "b"), ("do", "c")]
    assert log.tasks[tid]["state"] == "failed"
    assert "nothing undone" in log.tasks[tid]["error"]
    assert failures == [("c broke", True)]


def test_a_restart_past_the_commit_point_goes_forward_even_in_undo_mode():
    log, calls = MemoryLog(), []
    wf, _ = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", _do(calls, "b"), commit=True),
        Step("c", _do(calls, "c", SystemExit("killed")))], resume="undo")
    with pytest.raises(SystemExit):
        engine(log, wf)._run_task(log.task_create("demo", {}))
    calls.clear()
    wf.steps[2] = Step("c", _do(calls, "c"))
    engine(log, wf).run(1)
    assert calls == [("do", "c")]
    assert log.tasks[1]["state"] == "done"


def test_a_commit_point_may_not_be_followed_by_an_undo():
    with pytest.raises(ValueError, match="commit point"):
        Workflow("x", [Step("a", None, commit=True),
                       Step("b", None, lambda ctx: None)])


def test_an_undo_on_a_gone_host_is_skipped_and_recorded():
    log, calls = MemoryLog(), []
    gone = HostGone("host h2 is down", host="h2",
                    leftover={"uuid": "u", "storage": "local",
                              "remove": ["files"]})
    wf, failures = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", _do(calls, "b"), _undo(calls, "b", gone)),
        Step("c", _do(calls, "c", TimeoutError()))])
    tid = engine(log, wf).run_sync("demo", {})
    # b's undo was skipped, a's still ran.
    assert calls[-2:] == [("undo", "b"), ("undo", "a")]
    assert [st["state"] for st in log.steps[tid]] == \
        ["undone", "skipped", "undone"]
    assert log.leftovers == [("h2", {"uuid": "u", "storage": "local",
                                     "remove": ["files"]})]
    assert log.tasks[tid]["error"] == "TimeoutError"     # never empty


def test_a_superseded_task_stops_and_undoes_nothing():
    log, calls = MemoryLog(), []

    def taken(ctx):
        calls.append(("do", "b"))
        log.tasks[ctx.task_id]["superseded_by"] = 99
    wf, failures = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", taken, _undo(calls, "b")),
        Step("c", _do(calls, "c"), _undo(calls, "c"))])
    tid = engine(log, wf).run_sync("demo", {})
    assert calls == [("do", "a"), ("do", "b")]
    assert log.tasks[tid]["state"] == "superseded"
    assert failures == []


def test_a_task_superseded_while_its_step_ran_undoes_nothing():
    log, calls = MemoryLog(), []

    def taken_then_failed(ctx):
        calls.append(("do", "b"))
        log.tasks[ctx.task_id]["superseded_by"] = 99
        raise TimeoutError()
    wf, failures = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", taken_then_failed, _undo(calls, "b"))])
    tid = engine(log, wf).run_sync("demo", {})
    assert calls == [("do", "a"), ("do", "b")]
    assert log.tasks[tid]["state"] == "superseded"
    assert failures == []


def test_a_refused_update_means_the_task_lost_its_instance():
    log, calls = MemoryLog(), []
    wf, failures = _flow(calls, [
        Step("a", _do(calls, "a"), _undo(calls, "a")),
        Step("b", _do(calls, "b", NotOwner("owned by task 7")))])
    tid = engine(log, wf).run_sync("demo", {})
    assert calls == [("do", "a"), ("do", "b")]
    assert log.tasks[tid]["state"] == "superseded"


def test_cancel_undoes_but_not_past_the_commit_point():
    log, calls = MemoryLog(), []
    eng = None

    def ask_cancel(ctx):
        calls.append(("do", "a"))
        eng.cancel(ctx.task_id)
    wf, failures = _flow(calls, [
        Step("a", ask_cancel, _undo(calls, "a")),
        Step("b", _do(calls, "b"))])
    eng = engine(log, wf)
    tid = eng.run_sync("demo", {})
    assert calls == [("do", "a"), ("undo", "a")]
    assert log.tasks[tid]["state"] == "failed"
    assert "cancelled" in log.tasks[tid]["error"]

    with pytest.raises(Conflict, match="has ended"):
        eng.cancel(tid)

    refused = []

    def too_late(ctx):
        try:
            eng2.cancel(ctx.task_id)
        except Conflict as err:
            refused.append(str(err))
    wf2, _ = _flow(calls, [Step("a", _do(calls, "a"), commit=True),
                           Step("b", too_late)])
    eng2 = engine(log, wf2)
    tid2 = eng2.run_sync("demo", {})
    assert log.tasks[tid2]["state"] == "done"
    assert "point of no return" in refused[0]


def test_finished_tasks_are_forgotten():
    log, calls = MemoryLog(), []
    wf, _ = _flow(calls, [Step("a", _do(calls, "a"))])
    eng = engine(log, wf)
    ids = [eng.submit("demo", {}) for _ in range(20)]
    for tid in ids:
        eng.wait(tid)
    eng.shutdown()
    assert eng.in_flight() == []
    assert all(log.tasks[t]["state"] == "done" for t in ids)
