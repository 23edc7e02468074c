"""Store methods: the task log the task engine writes
(agent.controller.tasks.engine): tasks and their steps, so that a
restarted controller resumes or undoes what was in flight."""
from sqlalchemy import select

from agent.controller.db.models import Task, TaskStep, utcnow
from agent.controller.db.session import one

UNFINISHED = ("running", "undoing")
TASK_STATES = ("running", "undoing", "done", "failed")


def _task(s, task_id):
    return one(s, select(Task).where(Task.id == task_id), f"task {task_id}")


def _step(s, task_id, name):
    return one(s, select(TaskStep).where(TaskStep.task_id == task_id,
                                         TaskStep.name == name),
               f"step {name} of task {task_id}")


class TasksMixin:
    def task_create(self, kind, params, instance_uuid=None):
        """Record a running task; returns its id."""
        task = Task(kind=kind, params=params, instance_uuid=instance_uuid)
        with self.db.write() as s:
            s.add(task)
            s.flush()
            return task.id

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

    def task_finish(self, task_id, state, error=None):
        """Set the task's state (running|undoing|done|failed) and error."""
        if state not in TASK_STATES:
            raise ValueError(f"unknown task state {state}")
        with self.db.write() as s:
            task = _task(s, task_id)
            task.state, task.error = state, error

    def task_progress(self, task_id, message):
        with self.db.write() as s:
            _task(s, task_id).progress = message

    def steps_get(self, task_id):
        """The task's steps in order: dicts with index, name, state, data,
        error."""
        with self.db.read() as s:
            return [st.as_dict() for st in s.scalars(
                select(TaskStep).where(TaskStep.task_id == task_id)
                .order_by(TaskStep.index))]

    def step_started(self, task_id, index, name):
        """Record (again, when resumed) that a step is about to run."""
        with self.db.write() as s:
            step = s.execute(select(TaskStep).where(
                TaskStep.task_id == task_id, TaskStep.name == name)
            ).scalar_one_or_none()
            if step is None:
                s.add(TaskStep(task_id=task_id, index=index, name=name,
                               state="started"))
            else:
                step.state, step.error = "started", None
                step.started_at, step.finished_at = utcnow(), None

    def step_done(self, task_id, name, data):
        self._end_step(task_id, name, state="done", data=data)

    def step_failed(self, task_id, name, error):
        self._end_step(task_id, name, state="failed", error=error)

    def step_undone(self, task_id, name):
        self._end_step(task_id, name, state="undone")

    def _end_step(self, task_id, name, **values):
        with self.db.write() as s:
            step = _step(s, task_id, name)
            for key, value in values.items():
                setattr(step, key, value)
            step.finished_at = utcnow()
