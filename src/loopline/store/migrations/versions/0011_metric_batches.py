"""Metric batches applied, by id: a batch sent again after its answer was lost is
acknowledged without storing its points twice (store/_metrics.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-21
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("applied_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_metric_batches_applied_at", "metric_batches", ["applied_at"])


def downgrade() -> None:
    op.drop_table("metric_batches")
