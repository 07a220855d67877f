"""A membership filter of request ids per prediction-log file (for `loopline trace`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log_request_filters",
        sa.Column(
            "file_id",
            sa.String(32),
            sa.ForeignKey("prediction_log_files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("blocks", sa.Integer, nullable=False),
        sa.Column("bits", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_log_request_filters")
