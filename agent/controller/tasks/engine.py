"""Runs workflows as persistent tasks.

The task log (the store) records a step as ``started`` before it runs and
``done`` with its returned data after; a failure marks it ``failed`` and runs
the undos of that step and every earlier one, newest first, each recorded
``undone``.  ``resume_all`` picks up what a previous controller left in
flight.
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.controller.tasks.workflow import Context

LOG = logging.getLogger(__name__)

RUNNING, UNDOING, DONE, FAILED = "running", "undoing", "done", "failed"


class TaskEngine:
    def __init__(self, log, registry, services, max_workers=16):
        """``log``: the task log (see TaskLog in agent.controller.tasks.log);
        ``registry``: kind -> callable(params) returning a Workflow."""
        self.log = log
        self.registry = registry
        self.services = services
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="task")
        self._done = {}
        self._lock = threading.Lock()

    def submit(self, kind, params, instance_uuid=None):
        """Record a new task and start it; returns its id at once."""
        task_id = self.log.task_create(kind, params, instance_uuid)
        self._start(task_id)
        return task_id

    def run_sync(self, kind, params, instance_uuid=None):
        task_id = self.log.task_create(kind, params, instance_uuid)
        self._run(task_id)
        return task_id

    def wait(self, task_id, timeout=None):
        with self._lock:
            fut = self._done.get(task_id)
        if fut is not None:
            fut.result(timeout)

    def resume_all(self):
        """Start every task a previous controller left running or undoing."""
        ids = self.log.tasks_unfinished()
        for task_id in ids:
            LOG.info("resuming task %s", task_id)
            self._start(task_id)
        return ids

    def shutdown(self, wait=True):
        self._pool.shutdown(wait=wait, cancel_futures=False)

    def _start(self, task_id):
        fut = self._pool.submit(self._run, task_id)
        with self._lock:
            self._done[task_id] = fut

    def _run(self, task_id):
        try:
            self._run_task(task_id)
        except Exception:   # the engine must never die with a task
            LOG.exception("task %s: engine error", task_id)

    def _run_task(self, task_id):
        task = self.log.task_get(task_id)
        if task["kind"] not in self.registry:
            self.log.task_finish(task_id, FAILED,
                                 f"unknown task kind {task['kind']}")
            return
        workflow = self.registry[task["kind"]](task["params"])
        ctx = Context(task_id=task_id, params=task["params"],
                      services=self.services,
                      progress=lambda msg: self.log.task_progress(task_id,
                                                                  msg))
        states = {}
        for rec in self.log.steps_get(task_id):
            states[rec["name"]] = rec["state"]
            if rec["state"] == "done" and rec.get("data"):
                ctx.data.update(rec["data"])
        resuming = bool(states)
        if task["state"] == UNDOING or (
                resuming and task["state"] == RUNNING
                and workflow.resume == "undo"):
            err = RuntimeError(task.get("error") or
                               "controller restarted while the task ran")
            self._undo(ctx, workflow, states, err)
            return
        for index, step in enumerate(workflow.steps):
            if states.get(step.name) == "done":
                continue
            self.log.step_started(task_id, index, step.name)
            states[step.name] = "started"
            started = time.monotonic()
            try:
                out = step.do(ctx) or {}
            except Exception as err:
                LOG.warning("task %s (%s) step %s failed: %s", task_id,
                            workflow.kind, step.name, err)
                self.log.step_failed(task_id, step.name, _one_line(err))
                states[step.name] = "failed"
                self._undo(ctx, workflow, states, err)
                return
            ctx.data.update(out)
            self.log.step_done(task_id, step.name, out)
            LOG.debug("task %s (%s) step %s done in %.3f s", task_id,
                      workflow.kind, step.name, time.monotonic() - started)
            states[step.name] = "done"
        self.log.task_finish(task_id, DONE)

    def _undo(self, ctx, workflow, states, err):
        self.log.task_finish(ctx.task_id, UNDOING, _one_line(err))
        undo_failed = None
        for step in reversed(workflow.steps):
            if states.get(step.name) not in ("started", "done", "failed"):
                continue
            if step.undo is not None:
                try:
                    step.undo(ctx)
                except Exception as uerr:
                    LOG.exception("task %s: undo of %s failed", ctx.task_id,
                                  step.name)
                    undo_failed = uerr
                    break
            self.log.step_undone(ctx.task_id, step.name)
            states[step.name] = "undone"
        message = _one_line(err)
        if undo_failed is not None:
            message += f"; undo failed: {_one_line(undo_failed)}"
        self.log.task_finish(ctx.task_id, FAILED, message)
        if workflow.on_failed is not None:
            try:
                workflow.on_failed(ctx, err if undo_failed is None
                                   else undo_failed)
            except Exception:
                LOG.exception("task %s: on_failed hook failed", ctx.task_id)


def _one_line(err):
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:500]
