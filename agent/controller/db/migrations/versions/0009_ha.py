"""Automatic recovery: host events (``host event list``): what the
controller did to a failed host and why (detected, fence attempts and
their reasons, evacuated, recovered).

Revision ID: 0009_ha
Revises: 0008_leader
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_ha"
down_revision = "0008_leader"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "host_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(length=63), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_events")))
    op.create_index(op.f("ix_host_events_host"), "host_events", ["host"])


def downgrade():
    op.drop_index(op.f("ix_host_events_host"), table_name="host_events")
    op.drop_table("host_events")
