"""Hash-chain the audit log: `prev_hash` and `hash` on every event, and the chain's head.

Existing events are chained in their order (`seq`), renumbered 1, 2, 3, ... where an
earlier rollback left a gap (PostgreSQL sequences do), so that from here on a gap in
`seq` means a deleted event. See store/_audit_chain.py for the hash.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from loopline.store._audit_chain import event_hash, new_head_row
from loopline.store._schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    seq, last = _chain_existing_events(op.get_bind())
    op.bulk_insert(head, [{**new_head_row(), "seq": seq, "hash": last}])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_audit_events_prev_hash", ["prev_hash"])


def _chain_existing_events(conn: sa.Connection) -> tuple[int, str]:
    """Number and hash the events there are, oldest first; the chain's (seq, head)."""
    events = _events_table()
    rows = conn.execute(sa.select(events).order_by(events.c.seq)).mappings().all()
    head = new_head_row()["hash"]
    changes: list[dict[str, Any]] = []
    for position, row in enumerate(rows, start=1):
        event = {**row, "seq": position, "prev_hash": head}
        head = event_hash(event)
        # Renumbering in ascending order never collides: position <= the old seq.
        changes.append({"old": row["seq"], "new": position, "p": event["prev_hash"], "h": head})
    update = (
        events.update()
        .where(events.c.seq == sa.bindparam("old"))
        .values(seq=sa.bindparam("new"), prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"))
    )
    for start in range(0, len(changes), _BATCH):
        conn.execute(update, changes[start : start + _BATCH])
    return len(rows), head


def _events_table() -> sa.Table:
    return sa.Table(
        "audit_events",
        sa.MetaData(),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("id", sa.String(32)),
        sa.Column("time", UTCDateTime),
        sa.Column("actor", sa.String(256)),
        sa.Column("action", sa.String(64)),
        sa.Column("object_type", sa.String(32)),
        sa.Column("object_id", sa.String(256)),
        sa.Column("before_json", sa.Text),
        sa.Column("after_json", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("hash", sa.String(64)),
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_prev_hash", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    op.drop_table("audit_head")
