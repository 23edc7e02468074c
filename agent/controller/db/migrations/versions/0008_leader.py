"""The leader lease of standby controllers (PostgreSQL).

- leader: one row (id 1): the current term (raised by one each time a
  controller takes the leader's advisory lock), who holds it (holder: a
  name; address: its API socket; backend_pid: the PostgreSQL session
  holding the lock) and since when.  On SQLite the row stays at term 0:
  one controller, no election.
- tasks.term: the leader term of the last write of the task (its steps
  included), so that the task log shows which leader wrote what.

Revision ID: 0008_leader
Revises: 0007_groups
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_leader"
down_revision = "0007_groups"
branch_labels = None
depends_on = None


def upgrade():
    leader = op.create_table(
        "leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=1024), nullable=True),
        sa.Column("backend_pid", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leader")))
    op.bulk_insert(leader, [{"id": 1, "term": 0}])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("term", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("term")
    op.drop_table("leader")
