"""Runs workflows as persistent tasks.

The task log (the store) records a step as ``started`` before it runs and
``done`` with its returned data after (in the write that starts the next
step or ends the task: one write per step); a failure marks it
``failed`` and runs the undos of that step and every earlier one, newest
first, each recorded ``undone``.  ``resume_all`` picks up what a
previous controller left in flight.

Beyond that, four rules make failure handling safe:

- **Commit points.**  A step marked ``commit`` is a point of no return:
  once it is done the task only goes forward.  A later failure undoes
  nothing (the guest may already run elsewhere), a restart resumes forward
  even in a ``resume="undo"`` workflow, and a cancel is refused.
- **Gone hosts.**  An undo that finds its host gone raises ``HostGone``
  (agent.controller.ops.steps decides when that is safe: removing files
  can wait for a host's return, stopping a guest that may run cannot); it
  is recorded ``skipped`` with what it left there, and the undos before it
  still run.  The task log's ``record_leftover`` hears of it, so the host is
  cleaned when it returns.
- **Ownership.**  A task owns its instance (the store's fencing token).
  When another task supersedes it, or its change is refused as NotOwner,
  it stops at once and undoes nothing: the instance is the new owner's.
- **Cancel.**  ``cancel`` asks a task to stop; it is seen between steps
  and undoes what was done, as a failure would.
- **Deposed.**  A controller that lost the leader lease has every write
  refused (Deposed): its tasks stop where they are, recording nothing and
  undoing nothing; the new leader resumes them.

A task that ends is forgotten by the engine (its record stays in the
store).
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.common.errors import (Conflict, Deposed, DroverError, HostGone,
                                 NotOwner, one_line)
from agent.controller.tasks.workflow import Context

LOG = logging.getLogger(__name__)

RUNNING, UNDOING, DONE, FAILED = "running", "undoing", "done", "failed"
SUPERSEDED = "superseded"


class Cancelled(DroverError):
    """The operator cancelled the task."""


class TaskEngine:
    def __init__(self, log, registry, services, max_workers=16,
                 inline=False):
        """``log``: the task log (the store, or ActionTaskLog over it);
        ``registry``: kind -> callable(params) returning a Workflow;
        ``inline``: ``start`` runs the task to its end in the calling
        thread (the simulated fleet, in simulated time)."""
        self.log = log
        self.registry = registry
        self.services = services
        self.inline = inline
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="task")
        self._running = {}
        self._lock = threading.Lock()

    # -- starting tasks -----------------------------------------------------

    def submit(self, kind, params, instance_uuid=None):
        """Record a new task and start it; returns its id at once.  Tasks
        on an instance are admitted by agent.controller.admission, which
        records them with the instance's ownership, then ``start``s them."""
        task_id = self.log.task_create(kind, params, instance_uuid)
        self.start(task_id)
        return task_id

    def start(self, task_id):
        """Run an already recorded task in the background."""
        if self.inline:
            self._run(task_id)
            return
        with self._lock:
            if task_id in self._running:
                return
            fut = self._pool.submit(self._run, task_id)
            self._running[task_id] = fut
        fut.add_done_callback(lambda _f: self._forget(task_id))

    def run(self, task_id):
        """Run an already recorded task in this thread (tests, tools)."""
        self._run(task_id)

    def run_sync(self, kind, params, instance_uuid=None):
        task_id = self.log.task_create(kind, params, instance_uuid)
        self._run(task_id)
        return task_id

    def resume_all(self):
        """Start every task a previous controller left running or undoing.
        Inline, newest first: a parent (a host drain or evacuation) waits
        for the children it started after itself, so they must end first;
        in the background they all run at once."""
        ids = self.log.tasks_unfinished()
        for task_id in (reversed(ids) if self.inline else ids):
            LOG.info("resuming task %s", task_id)
            self.start(task_id)
        return ids

    # -- following and stopping them ----------------------------------------

    def wait(self, task_id, timeout=None):
        with self._lock:
            fut = self._running.get(task_id)
        if fut is not None:
            fut.result(timeout)

    def in_flight(self):
        """Ids of the tasks this engine is running now."""
        with self._lock:
            return sorted(self._running)

    def cancel(self, task_id):
        """Ask ``task_id`` to stop and undo; Conflict if it has ended or is
        past its commit point."""
        task = self.log.task_get(task_id)
        if task["state"] not in (RUNNING, UNDOING):
            raise Conflict(f"task {task_id} has ended ({task['state']})")
        workflow = self.registry[task["kind"]](task["params"])
        done = {s["name"] for s in self.log.steps_get(task_id)
                if s["state"] == "done"}
        if _committed(workflow, done):
            raise Conflict(f"task {task_id} ({task['kind']}) is past its "
                           "point of no return; it can only go forward")
        self.log.task_request_cancel(task_id)

    def shutdown(self, wait=True):
        self._pool.shutdown(wait=wait, cancel_futures=False)

    def _forget(self, task_id):
        with self._lock:
            self._running.pop(task_id, None)

    # -- running ------------------------------------------------------------

    def _run(self, task_id):
        try:
            self._run_task(task_id)
        except Deposed as err:
            LOG.warning("task %s: stopped, left to the new leader: %s",
                        task_id, one_line(err))
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
        committed = _committed(workflow, {n for n, s in states.items()
                                          if s == "done"})
        resuming = bool(states)
        if not committed and (task["state"] == UNDOING or (
                resuming and task["state"] == RUNNING
                and workflow.resume == "undo")):
            err = RuntimeError(task.get("error") or
                               "controller restarted while the task ran")
            self._undo(ctx, workflow, states, err)
            return
        done = None     # (name, data) of the step done, not yet written
        for index, step in enumerate(workflow.steps):
            if states.get(step.name) == "done":
                continue
            # One write: the step before is done, and this one starts
            # unless another task took the instance or a cancel came
            # (seen only before the commit point).
            interrupt = self.log.step_begin(task_id, index, step.name,
                                            cancellable=not committed,
                                            done=done)["interrupt"]
            done = None
            if interrupt == "superseded":
                self._superseded(ctx, workflow)
                return
            if interrupt == "cancelled":
                self._undo(ctx, workflow, states,
                           Cancelled(f"task {task_id} cancelled"))
                return
            states[step.name] = "started"
            started = time.monotonic()
            try:
                out = step.do(ctx) or {}
            except Deposed:
                raise
            except NotOwner as err:
                self.log.step_failed(task_id, step.name, one_line(err))
                self._superseded(ctx, workflow)
                return
            except Exception as err:
                LOG.warning("task %s (%s) step %s failed: %s", task_id,
                            workflow.kind, step.name, one_line(err))
                self.log.step_failed(task_id, step.name, one_line(err))
                states[step.name] = "failed"
                if committed:
                    self._fail_forward(ctx, workflow, err)
                else:
                    self._undo(ctx, workflow, states, err)
                return
            ctx.data.update(out)
            done = (step.name, out)
            LOG.debug("task %s (%s) step %s done in %.3f s", task_id,
                      workflow.kind, step.name, time.monotonic() - started)
            states[step.name] = "done"
            committed = committed or step.commit
        self.log.task_finish(task_id, DONE, done=done)

    def _superseded(self, ctx, workflow):
        by = self.log.task_get(ctx.task_id).get("superseded_by")
        LOG.info("task %s (%s): superseded by task %s; stopping, nothing "
                 "undone", ctx.task_id, workflow.kind, by)
        self.log.task_finish(ctx.task_id, SUPERSEDED,
                             f"superseded by task {by}" if by else
                             "the instance is owned by another task")

    def _fail_forward(self, ctx, workflow, err):
        """A failure past the commit point: nothing is undone."""
        message = (f"{one_line(err)} (past the point of no return: nothing "
                   "undone)")
        ctx.committed = True
        self._on_failed(ctx, workflow, err)
        self.log.task_finish(ctx.task_id, FAILED, message)

    def _undo(self, ctx, workflow, states, err):
        self.log.task_finish(ctx.task_id, UNDOING, one_line(err))
        undo_failed = None
        for step in reversed(workflow.steps):
            if states.get(step.name) not in ("started", "done", "failed"):
                continue
            if self.log.task_get(ctx.task_id).get("superseded_by"):
                # Another task owns the instance now: its hosts and files
                # are the new owner's to decide about, not this undo's.
                self._superseded(ctx, workflow)
                return
            if step.undo is not None:
                try:
                    step.undo(ctx)
                except Deposed:
                    raise
                except NotOwner:
                    self._superseded(ctx, workflow)
                    return
                except HostGone as gone:
                    self._skipped(ctx, step, gone)
                    states[step.name] = "skipped"
                    continue
                except Exception as uerr:
                    LOG.exception("task %s: undo of %s failed", ctx.task_id,
                                  step.name)
                    undo_failed = uerr
                    break
            self.log.step_undone(ctx.task_id, step.name)
            states[step.name] = "undone"
        message = one_line(err)
        if undo_failed is not None:
            message += f"; undo failed: {one_line(undo_failed)}"
        # The hook runs while the task still owns its instance (and can
        # read the whole reason from the task log); ending the task then
        # gives the instance up.
        self.log.task_finish(ctx.task_id, UNDOING, message)
        self._on_failed(ctx, workflow,
                        err if undo_failed is None else undo_failed)
        self.log.task_finish(ctx.task_id, FAILED, message)

    def _skipped(self, ctx, step, gone):
        host = getattr(gone, "host", None)
        leftover = getattr(gone, "leftover", None)
        LOG.warning("task %s: undo of %s skipped: %s", ctx.task_id,
                    step.name, one_line(gone))
        self.log.step_skipped(ctx.task_id, step.name,
                              {"host": host, "leftover": leftover,
                               "reason": one_line(gone)})
        if host is not None and leftover is not None:
            self.log.record_leftover(ctx.task_id, host, leftover,
                                     one_line(gone))

    def _on_failed(self, ctx, workflow, err):
        """The workflow's failure hook (ctx.committed says whether the task
        got past its commit point)."""
        if workflow.on_failed is None:
            return
        try:
            workflow.on_failed(ctx, err)
        except Deposed:
            raise
        except NotOwner:
            LOG.info("task %s: on_failed refused: another task owns the "
                     "instance", ctx.task_id)
        except Exception:
            LOG.exception("task %s: on_failed hook failed", ctx.task_id)


def _committed(workflow, done_names):
    """True once a commit-point step of ``workflow`` is done."""
    return any(s.commit and s.name in done_names for s in workflow.steps)
