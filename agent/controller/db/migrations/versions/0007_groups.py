"""Server groups (Nova's): a placement policy shared by their members.

- server_groups: name, policy (affinity, anti-affinity, soft-affinity,
  soft-anti-affinity), rules (max_server_per_host).
- server_group_members: instance uuid -> its group (one group at most).

Revision ID: 0007_groups
Revises: 0006_images
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_groups"
down_revision = "0006_images"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "server_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_server_groups_name")),
        sa.UniqueConstraint("uuid", name=op.f("uq_server_groups_uuid")))
    op.create_table(
        "server_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["server_groups.id"], ondelete="CASCADE",
            name=op.f("fk_server_group_members_group_id_server_groups")),
        sa.PrimaryKeyConstraint("instance_uuid",
                                name=op.f("pk_server_group_members")))
    op.create_index(op.f("ix_server_group_members_group_id"),
                    "server_group_members", ["group_id"])


def downgrade():
    op.drop_index(op.f("ix_server_group_members_group_id"),
                  "server_group_members")
    op.drop_table("server_group_members")
    op.drop_table("server_groups")
