"""Live-migration prediction: migrations.prediction, the prediction a
live migration started with (agent.controller.prediction: duration,
downtime, verdict, rounds, reason, and the inputs measured), shown by
``server migration show`` next to the live ETA.

Revision ID: 0005_prediction
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_prediction"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("migrations") as batch:
        batch.add_column(sa.Column("prediction", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("migrations") as batch:
        batch.drop_column("prediction")
