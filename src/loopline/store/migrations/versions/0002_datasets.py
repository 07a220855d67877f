"""Datasets, their immutable versions, and validation results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from loopline.store._schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("total_size", sa.BigInteger, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=True),
        sa.Column("schema_json", sa.Text, nullable=True),
        sa.Column("profile_hash", sa.String(64), nullable=True),
        sa.Column("source", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_dataset_versions_dataset_id_version",
        "dataset_versions",
        ["dataset_id", "version"],
        unique=True,
    )
    op.create_index("ix_dataset_versions_manifest_hash", "dataset_versions", ["manifest_hash"])
    op.create_table(
        "validation_results",
        sa.Column("id", ID, primary_key=True),
        sa.Column("version_id", ID, sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("suite_name", sa.String(256), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("result_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_validation_results_version_id_created_at",
        "validation_results",
        ["version_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("validation_results")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
