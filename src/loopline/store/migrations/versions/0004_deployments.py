"""Deployments with their revision history, the prediction log index and feedback labels.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "deployment_revisions",
        sa.Column(
            "deployment_id", sa.String(32), sa.ForeignKey("deployments.id"), primary_key=True
        ),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "prediction_log_files",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("hour", UTCDateTime, nullable=False),
        sa.Column("blob_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("first_time", UTCDateTime, nullable=False),
        sa.Column("last_time", UTCDateTime, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_prediction_log_files_deployment_hour", "prediction_log_files", ["deployment", "hour"]
    )
    op.create_index(
        "ix_prediction_log_files_deployment_blob_hash",
        "prediction_log_files",
        ["deployment", "blob_hash"],
        unique=True,
    )
    op.create_table(
        "prediction_feedback",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("label_json", sa.Text, nullable=False),
        sa.Column("time", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_prediction_feedback_deployment_request_id",
        "prediction_feedback",
        ["deployment", "request_id"],
    )
    op.create_index(
        "ix_prediction_feedback_deployment_time", "prediction_feedback", ["deployment", "time"]
    )


def downgrade() -> None:
    op.drop_table("prediction_feedback")
    op.drop_table("prediction_log_files")
    op.drop_table("deployment_revisions")
    op.drop_table("deployments")
