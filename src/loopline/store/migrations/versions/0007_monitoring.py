"""Monitoring: stored reports, alerts (one open per deployment and check), watcher state.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("since", UTCDateTime, nullable=True),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failed_json", sa.Text, nullable=False),
        sa.Column("reference", sa.String(300), nullable=True),
        sa.Column("report_hash", sa.String(64), nullable=False),
        sa.Column("html_hash", sa.String(64), nullable=True),
        sa.Column("scores_json", sa.Text, nullable=False),
        sa.Column("schedule_key", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
    )
    op.create_index(
        "ix_monitor_reports_deployment_created_at", "monitor_reports", ["deployment", "created_at"]
    )
    op.create_index(
        "ix_monitor_reports_deployment_schedule_key",
        "monitor_reports",
        ["deployment", "schedule_key"],
        unique=True,
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("open_key", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("last_sent_at", UTCDateTime, nullable=True),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("sends", sa.Integer, nullable=False),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.UniqueConstraint("open_key", name="uq_monitor_alerts_open_key"),
    )
    op.create_index(
        "ix_monitor_alerts_deployment_opened_at", "monitor_alerts", ["deployment", "opened_at"]
    )
    op.create_table(
        "monitor_state",
        sa.Column("deployment", sa.String(128), primary_key=True),
        sa.Column("last_until", UTCDateTime, nullable=True),
        sa.Column("last_run_at", UTCDateTime, nullable=True),
        sa.Column("last_report_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("monitor_state")
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_reports")
