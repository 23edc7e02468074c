"""Images made from instances: snapshots and shelving.

- images.status: "saving" while a snapshot is being copied into the
  store, "active" once its file is there and checked (sha256); only an
  active image boots instances.
- images.instance_uuid: the instance a snapshot was taken of (None for
  an imported image).
- instances.shelved_image_uuid: the image that holds a shelved
  instance's disk while it is on no host (SHELVED_OFFLOADED).

Revision ID: 0006_images
Revises: 0005_prediction
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_images"
down_revision = "0005_prediction"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16),
                                   nullable=False,
                                   server_default="active"))
        batch.add_column(sa.Column("instance_uuid", sa.String(length=36),
                                   nullable=True))
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("shelved_image_uuid",
                                   sa.String(length=36), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("shelved_image_uuid")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("instance_uuid")
        batch.drop_column("status")
