"""Indexes for the audit log filtered by user, action and object, newest first (the web
UI's audit table): 100,000 events answer a filtered page in milliseconds, not by a scan.

On PostgreSQL the object index uses text_pattern_ops, so that the "everything under model
churn" filter (`object_id LIKE 'churn/%'`) is served by it under any collation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-20
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_actor_seq", "audit_events", ["actor", "seq"])
    op.create_index("ix_audit_events_action_seq", "audit_events", ["action", "seq"])
    op.create_index(
        "ix_audit_events_object_id_seq",
        "audit_events",
        ["object_id", "seq"],
        postgresql_ops={"object_id": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_object_id_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_action_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_actor_seq", table_name="audit_events")
