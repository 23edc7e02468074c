"""Task ownership: the task that owns an instance, cancel and supersede.

- instances.task_id: the task that owns the instance (a fencing token:
  updates from any other task are refused).
- tasks.cancel_requested: the operator asked the task to stop.
- tasks.superseded_by: the task that took the instance over.
- tasks.state widened for "superseded".

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("cancel_requested", sa.Boolean(),
                                   nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("superseded_by", sa.Integer(),
                                   nullable=True))
        batch.alter_column("state", type_=sa.String(length=16),
                           existing_type=sa.String(length=8))


def downgrade():
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("state", type_=sa.String(length=8),
                           existing_type=sa.String(length=16))
        batch.drop_column("superseded_by")
        batch.drop_column("cancel_requested")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("task_id")
