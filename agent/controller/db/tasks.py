"""Store methods: the task log the task engine writes
(agent.controller.tasks.engine): tasks and their steps, so that a
restarted controller resumes or undoes what was in flight.

Ownership: a task made by ``admit_task`` owns its instance
(``instances.task_id``) until it ends; ``update_instance(owner=...)``
refuses changes from any other task.  A task may be superseded by a new
one (evacuation of an instance whose move was in flight on a host that
died): the instance passes to the new task at once, in the same
transaction, and the old one can no longer change it.

Leader terms (standby controllers on PostgreSQL): every write of a task,
its steps included, carries the writer's leader term (``tasks.term``), and
the write transaction first checks that this controller still holds the
leader lease (``Database.fence``, agent.controller.leader): a deposed
leader's write raises Deposed and changes nothing.  Rows decided on are
taken with FOR UPDATE (the instance a task admits, the task it ends).
"""
import logging
import threading

from sqlalchemy import insert, select, update

from agent.common.errors import Conflict, NotFound
from agent.controller import states
from agent.controller.db.instances import as_dict, get_instance
from agent.controller.db.actions import (begin_event, end_action,
                                         finish_event)
from agent.controller.db.models import (Instance, InstanceAction, Task,
                                        TaskStep, utcnow)
from agent.controller.db.session import one

LOG = logging.getLogger(__name__)

UNFINISHED = ("running", "undoing")
ENDED = ("done", "failed", "superseded")
TASK_STATES = UNFINISHED + ENDED


# Bumped after every committed change of a task's state or progress in
# this process: a waiter (the API's task.wait) sleeps until it moves
# instead of polling the database.
_changes = threading.Condition()
_generation = 0


def _changed():
    global _generation
    with _changes:
        _generation += 1
        _changes.notify_all()


def _task(s, task_id, lock=False):
    stmt = select(Task).where(Task.id == task_id)
    return one(s, stmt.with_for_update() if lock else stmt,
               f"task {task_id}")


def _finish_step(s, task_id, name, event, **values):
    """In session ``s``: the step's state (and data or error) and its end;
    ``event``: (event id, result, details) of its instance action event,
    finished with it, or None.  Statements, not ORM objects: the engine
    writes this at every step, and the ORM's load-change-flush tripled
    its cost."""
    done = s.execute(update(TaskStep).where(TaskStep.task_id == task_id,
                                            TaskStep.name == name)
                     .values(finished_at=utcnow(), **values))
    if not done.rowcount:
        raise NotFound(f"step {name} of task {task_id} not found")
    if event is not None:
        finish_event(s, *event)


def _start_step(s, task_id, index, name):
    """In session ``s``: the step is started (again, when resumed)."""
    now = utcnow()
    again = s.execute(update(TaskStep).where(TaskStep.task_id == task_id,
                                             TaskStep.name == name)
                      .values(state="started", error=None, started_at=now,
                              finished_at=None))
    if not again.rowcount:
        s.execute(insert(TaskStep).values(task_id=task_id, index=index,
                                          name=name, state="started",
                                          started_at=now))


class TasksMixin:
    def task_generation(self):
        """A number that changes whenever this process commits a change
        of a task's state or progress (see ``wait_task_change``)."""
        return _generation

    def wait_task_change(self, seen, timeout):
        """Wait until ``task_generation()`` is no longer ``seen`` or
        ``timeout`` seconds passed; True if it changed.  Changes made by
        another process (a standby that took over) are not seen: callers
        read the task again after ``timeout``."""
        with _changes:
            return _changes.wait_for(lambda: _generation != seen, timeout)

    def _stamp(self, s, task_id):
        """Mark the task as written in this leader's term."""
        if self.db.term is not None:
            s.execute(update(Task).where(Task.id == task_id)
                      .values(term=self.db.term))

    def task_create(self, kind, params, instance_uuid=None):
        """Record a running task; returns its id."""
        task = Task(kind=kind, params=params, instance_uuid=instance_uuid,
                    term=self.db.term)
        with self.db.write() as s:
            s.add(task)
            s.flush()
            return task.id

    def admit_task(self, kind, params, instance_uuid, rule=None,
                   action=None, request_id=None, supersede=False,
                   operation=None):
        """Start ``kind`` on an instance, atomically: the instance must be
        free (no task owns it) unless ``supersede``, ``rule`` (a
        states.Rule, or None) must allow its states; then its task_state
        is set, the instance action recorded (``action``: its name, e.g.
        "migrate"; ``operation`` names it in refusals; the action's id
        goes into the task's params as ``action_id``), the task created,
        and the task made the instance's owner.  Returns (instance, task
        id).  Conflict (one line) if the instance is busy or in the wrong
        state."""
        with self.db.write() as s:
            inst = get_instance(s, instance_uuid, lock=True)
            old = inst.task_id
            if old is not None and not supersede:
                busy = s.get(Task, old)
                what = busy.kind if busy is not None else "a task"
                raise Conflict(f"instance {inst.name} is busy ({what} in "
                               "progress); try again when it ends")
            if rule is not None:
                states.check_rule(operation or kind, rule, inst.name,
                                  inst.vm_state, inst.task_state)
                inst.task_state = rule.task_state
            params = dict(params)
            if action is not None:
                act = InstanceAction(instance_uuid=inst.uuid, action=action,
                                     request_id=request_id)
                s.add(act)
                s.flush()
                params["action_id"] = act.id
            task = Task(kind=kind, params=params, instance_uuid=inst.uuid,
                        term=self.db.term)
            s.add(task)
            s.flush()
            if old is not None:
                prev = s.get(Task, old)
                if prev is not None and prev.state in UNFINISHED:
                    prev.superseded_by = task.id
            inst.task_id = task.id
            s.flush()
            return as_dict(s, inst), task.id

    def task_request_cancel(self, task_id):
        """Ask a running task to stop (the engine undoes what it did, unless
        it is past its commit point)."""
        with self.db.write() as s:
            task = _task(s, task_id, lock=True)
            if task.state not in UNFINISHED:
                raise Conflict(f"task {task_id} has ended ({task.state})")
            task.cancel_requested = True
            return task.as_dict()

    def task_get(self, task_id):
        with self.db.read() as s:
            return _task(s, task_id).as_dict()

    def tasks_unfinished(self):
        """Ids of tasks running or undoing, oldest first."""
        with self.db.read() as s:
            return list(s.scalars(select(Task.id).where(
                Task.state.in_(UNFINISHED)).order_by(Task.id)))

    def list_tasks(self, instance_uuid=None, unfinished=False):
        stmt = select(Task).order_by(Task.id)
        if instance_uuid is not None:
            stmt = stmt.where(Task.instance_uuid == instance_uuid)
        if unfinished:
            stmt = stmt.where(Task.state.in_(UNFINISHED))
        with self.db.read() as s:
            return [t.as_dict() for t in s.scalars(stmt)]

    def task_finish(self, task_id, state, error=None, action_id=None,
                    done=None, done_event=None):
        """Set the task's state (running|undoing|done|failed|superseded)
        and error.  A task that ends gives its instance up; if it left a
        task_state behind (a failure hook that failed), that is cleared
        too, so an instance is never stuck busy.  ``action_id``: the
        instance action the task ran, finished with it (the error as its
        message).  ``done``, ``done_event``: as in step_begin, its last
        step."""
        if state not in TASK_STATES:
            raise ValueError(f"unknown task state {state}")
        try:
            self._end_task(task_id, state, error, action_id, done,
                           done_event)
        finally:
            _changed()

    def _end_task(self, task_id, state, error, action_id, done,
                  done_event):
        with self.db.write() as s:
            if done is not None:
                _finish_step(s, task_id, done[0], done_event, state="done",
                             data=done[1])
            task = _task(s, task_id, lock=True)
            task.state, task.error = state, error
            task.term = self.db.term
            if state in ENDED and action_id is not None:
                end_action(s, action_id, error)
            if state not in ENDED or task.instance_uuid is None:
                return
            for inst in s.scalars(select(Instance).where(
                    Instance.uuid == task.instance_uuid,
                    Instance.task_id == task_id)):
                inst.task_id = None
                if inst.task_state is not None and \
                        inst.vm_state != states.DELETED:
                    LOG.warning("task %s (%s) ended leaving %s in "
                                "task_state %s: cleared", task_id,
                                task.kind, inst.name, inst.task_state)
                    inst.task_state = None

    def task_progress(self, task_id, message):
        with self.db.write() as s:
            if not s.execute(update(Task).where(Task.id == task_id)
                             .values(progress=message)).rowcount:
                raise NotFound(f"task {task_id} not found")
            self._stamp(s, task_id)
        _changed()

    def steps_get(self, task_id):
        """The task's steps in order: dicts with index, name, state, data,
        error."""
        with self.db.read() as s:
            return [st.as_dict() for st in s.scalars(
                select(TaskStep).where(TaskStep.task_id == task_id)
                .order_by(TaskStep.index))]

    def step_begin(self, task_id, index, name, cancellable=True,
                   action_id=None, event=None, done=None,
                   done_event=None):
        """Start a step, in one transaction with the checks the engine
        makes between steps: a task superseded by another (its instance
        is the new owner's), or asked to cancel while ``cancellable``
        (not past its commit point), starts nothing.  Otherwise the step
        is recorded (again, when resumed) as started and, with
        ``action_id``, ``event`` (its instance action's event) begun.
        ``done``: (name, data) of the step before, recorded done first
        in the same transaction (``done_event``: as step_done's
        ``event``), whatever the checks find.  Returns {"interrupt":
        None | "superseded" | "cancelled", "event_id": the event's id or
        None}."""
        with self.db.write() as s:
            self._stamp(s, task_id)
            if done is not None:
                _finish_step(s, task_id, done[0], done_event, state="done",
                             data=done[1])
            flags = s.execute(select(Task.superseded_by,
                                     Task.cancel_requested)
                              .where(Task.id == task_id)).one_or_none()
            if flags is None:
                raise NotFound(f"task {task_id} not found")
            if flags.superseded_by:
                return {"interrupt": "superseded", "event_id": None}
            if flags.cancel_requested and cancellable:
                return {"interrupt": "cancelled", "event_id": None}
            _start_step(s, task_id, index, name)
            event_id = None
            if action_id is not None and event is not None:
                event_id = begin_event(s, action_id, event)
            return {"interrupt": None, "event_id": event_id}

    def step_done(self, task_id, name, data, event=None):
        """``event``: (event id, result, details) of the step's instance
        action event, finished in the same transaction."""
        self._end_step(task_id, name, event, state="done", data=data)

    def step_failed(self, task_id, name, error, event=None):
        self._end_step(task_id, name, event, state="failed", error=error)

    def step_undone(self, task_id, name):
        self._end_step(task_id, name, None, state="undone")

    def step_skipped(self, task_id, name, data, event=None):
        """An undo not run because its host was gone; ``data`` says what
        it left there."""
        self._end_step(task_id, name, event, state="skipped", data=data)

    def _end_step(self, task_id, name, event, **values):
        with self.db.write() as s:
            _finish_step(s, task_id, name, event, **values)
            self._stamp(s, task_id)
