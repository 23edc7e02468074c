"""Host status: why a host is down, and the clean-ups it owes.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NAME, UUID = 63, 36


def upgrade():
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("down_reason", sa.String(length=500),
                                   nullable=True))
    op.create_table(
        "host_cleanups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=NAME), nullable=False),
        sa.Column("instance_uuid", sa.String(length=UUID), nullable=False),
        sa.Column("storage", sa.String(length=8), nullable=False),
        sa.Column("remove", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_cleanups")),
        sa.UniqueConstraint("host", "instance_uuid",
                            name=op.f("uq_host_cleanups_host")))
    op.create_index(op.f("ix_host_cleanups_host"), "host_cleanups",
                    ["host"])


def downgrade():
    op.drop_index(op.f("ix_host_cleanups_host"), table_name="host_cleanups")
    op.drop_table("host_cleanups")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("down_reason")
