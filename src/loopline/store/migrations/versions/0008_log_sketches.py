"""Mergeable sketches per prediction-log file (the monitor's sketch path).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log_sketches",
        sa.Column(
            "file_id",
            sa.String(32),
            sa.ForeignKey("prediction_log_files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sketch_hash", sa.String(64), nullable=False),
        sa.Column("format", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_log_sketches")
