"""Experiments, runs, params, tags, metric points and run links.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RUN_ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "runs",
        sa.Column("id", RUN_ID, primary_key=True),
        sa.Column("experiment_id", sa.String(32), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("parent_id", RUN_ID, sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_branch", sa.String(256), nullable=True),
        sa.Column("git_dirty", sa.Boolean, nullable=True),
        sa.Column("git_patch_hash", sa.String(64), nullable=True),
        sa.Column("python_version", sa.String(32), nullable=True),
        sa.Column("packages_hash", sa.String(64), nullable=True),
        sa.Column("deleted_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_runs_experiment_id_start_time", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id"), primary_key=True),
            sa.Column("key", sa.String(256), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        op.create_index(f"ix_{name}_key_value", name, ["key", "value"])
    op.create_table(
        "metric_points",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float(53), nullable=True),
    )
    op.create_index("ix_metric_points_run_id_key_step", "metric_points", ["run_id", "key", "step"])
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float(53), nullable=True),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "run_links",
        sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("direction", sa.String(8), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(1024), primary_key=True),
        sa.Column("ref", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_run_links_kind_ref", "run_links", ["kind", "ref"])


def downgrade() -> None:
    for name in ("run_links", "latest_metrics", "metric_points", "tags", "params", "runs"):
        op.drop_table(name)
    op.drop_table("experiments")
