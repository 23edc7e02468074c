"""Store methods: what the metrics endpoint reads (agent.controller.metrics),
in few short statements: counts grouped in SQL, and the task and
migration records added since the last read."""
from sqlalchemy import func, select

from agent.controller.db.models import Host, Instance, Migration, Task


class MetricsMixin:
    def count_hosts(self):
        """{state: number of hosts}."""
        with self.db.read() as s:
            return dict(s.execute(select(Host.state, func.count())
                                  .group_by(Host.state)).all())

    def count_instances(self):
        """[(vm_state, task_state, number)] of the instances not
        deleted."""
        with self.db.read() as s:
            return [tuple(r) for r in s.execute(
                select(Instance.vm_state, Instance.task_state, func.count())
                .where(Instance.deleted_at.is_(None))
                .group_by(Instance.vm_state, Instance.task_state))]

    def tasks_after(self, task_id):
        """[(id, kind, state, created_at, updated_at)] of the tasks with
        an id above ``task_id``, by id (times: naive UTC datetimes)."""
        with self.db.read() as s:
            return [tuple(r) for r in s.execute(
                select(Task.id, Task.kind, Task.state, Task.created_at,
                       Task.updated_at)
                .where(Task.id > task_id).order_by(Task.id))]

    def migrations_after(self, migration_id):
        """[(id, type, status, created_at, updated_at, progress)] of the
        migrations with an id above ``migration_id``, by id."""
        with self.db.read() as s:
            return [tuple(r) for r in s.execute(
                select(Migration.id, Migration.type, Migration.status,
                       Migration.created_at, Migration.updated_at,
                       Migration.progress)
                .where(Migration.id > migration_id).order_by(Migration.id))]
