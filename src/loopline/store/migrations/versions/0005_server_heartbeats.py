"""Server heartbeats: which revision each running server serves, and its last load error.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_heartbeats",
        sa.Column("server_id", sa.String(32), primary_key=True),
        sa.Column("deployment", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("models_json", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_revision", sa.Integer, nullable=True),
        sa.Column("error_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_server_heartbeats_deployment", "server_heartbeats", ["deployment"])


def downgrade() -> None:
    op.drop_table("server_heartbeats")
