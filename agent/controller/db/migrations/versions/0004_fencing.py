"""Fencing: host states the operator sees and sets, fence methods.

- hosts.forced_down: the operator declared the host off (``host set
  --down``, Nova's forced_down); it counts as down until ``host set --up``.
- hosts.fenced_at: when its fence agent last reported it off (state
  "fenced", sticky until the host is reconciled or the operator clears it).
- hosts.fence_agent, hosts.fence_options: its fence method (a ClusterLabs
  fence agent and its options; secrets in them are never shown).
- hosts.fence_error: why its last fence failed, until one succeeds.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("forced_down", sa.Boolean(),
                                   nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("fenced_at", sa.DateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("fence_agent", sa.String(length=1024),
                                   nullable=True))
        batch.add_column(sa.Column("fence_options", sa.JSON(),
                                   nullable=True))
        batch.add_column(sa.Column("fence_error", sa.String(length=500),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("fence_error")
        batch.drop_column("fence_options")
        batch.drop_column("fence_agent")
        batch.drop_column("fenced_at")
        batch.drop_column("forced_down")
