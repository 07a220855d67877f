"""The audit log's hash chain: how an event is hashed, and how events join the chain.

Each event stores `prev_hash`, the hash of the event before it (GENESIS, 64 zeros, for
the first), and `hash`, the BLAKE3 of `b"loopline-audit-v1\\n"` followed by the
canonical JSON of its fields: an object with the keys `seq`, `id`, `time`, `actor`,
`action`, `object_type`, `object_id`, `before_json`, `after_json`, `reason` and
`prev_hash`, sorted, with `(",", ":")` separators and ASCII escapes; `time` as
`YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC; `before_json`/`after_json` as the stored text (or
null). Anyone can re-check a chain from these rules alone (`_audit_verify.py` does).
`seq` is the position in the chain (1, 2, 3, ...), so a deleted event leaves a gap, and
as `seq` is hashed an event cannot move without its hash changing.

Appending. Events recorded inside `Database.write` are collected and join the chain just
before the transaction commits: the writer locks the one `audit_head` row (`SELECT ...
FOR UPDATE` on PostgreSQL; on SQLite `BEGIN IMMEDIATE` already holds the database's
write lock), numbers and hashes its events after the head, inserts them and moves the
head. Two writers therefore cannot fork the chain: the second waits for the first to
commit and reads the head it left (and `prev_hash` is unique, so a fork would fail even
if they did not). The head is locked last, for the inserts and the commit only, so
concurrent changes overlap in everything else; and a writer holding the head waits for
no other lock, so the head takes part in no deadlock. An event recorded on a connection
outside `Database.write` joins the chain at once, locking the head for the rest of its
transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import blake3
from sqlalchemy import Connection, bindparam, select, update

from loopline.store._schema import audit_events, audit_head

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FORMAT = b"loopline-audit-v1\n"
HASHED = (
    "seq",
    "id",
    "time",
    "actor",
    "action",
    "object_type",
    "object_id",
    "before_json",
    "after_json",
    "reason",
    "prev_hash",
)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_PENDING = "loopline_audit_pending"
_HEAD_ID = 1
# Built once: an append runs these three statements, and building one costs about as much
# as running it on SQLite.
_LOCK_HEAD = (
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID).with_for_update()
)
_INSERT = audit_events.insert()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == _HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def canonical_time(moment: datetime) -> str:
    """The fixed text of a time in the hash: UTC, microseconds, a `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # stored times are UTC (UTCDateTime)
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(sep="T", timespec="microseconds") + "Z"  # YYYY-MM-DDTHH:MM:SS.ffffffZ


def canonical(event: Mapping[Any, Any]) -> bytes:
    """The bytes an event's hash covers (the module docstring spells them out)."""
    fields = {key: event[key] for key in HASHED}
    fields["time"] = canonical_time(fields["time"])
    return FORMAT + _ENCODER.encode(fields).encode("ascii")


def event_hash(event: Mapping[Any, Any]) -> str:
    """The BLAKE3 hash (64 hex characters) of an event's fields and its `prev_hash`."""
    digest: str = blake3.blake3(canonical(event)).hexdigest()
    return digest


@contextmanager
def chained_at_commit(conn: Connection) -> Iterator[None]:
    """Collect the events recorded on `conn` in the block; chain them as it ends.

    Used by `Database.write` around the body of a write transaction; when the block
    raises, nothing is chained (the transaction rolls back and its events with it).
    """
    pending: list[dict[str, Any]] = []
    # Held here, not read back from `conn` at the end: after the database dropped the
    # connection (a restart, pg_terminate_backend) `conn.info` raises SQLAlchemy's
    # PendingRollbackError, which would hide the real error (a 503) behind a 500.
    info = conn.info
    info[_PENDING] = pending
    try:
        yield
        if pending:
            append_to_chain(conn, pending)
    finally:
        info.pop(_PENDING, None)


def add_event(conn: Connection, event: dict[str, Any]) -> None:
    """Chain `event` when the transaction commits, or now outside `chained_at_commit`."""
    pending = conn.info.get(_PENDING)
    if pending is None:
        append_to_chain(conn, [event])
    else:
        pending.append(event)


def append_to_chain(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Number, hash and insert `events` after the chain's head, and move the head."""
    seq, prev = _locked_head(conn)
    rows = []
    for event in events:
        seq += 1
        row = {**event, "seq": seq, "prev_hash": prev}
        prev = row["hash"] = event_hash(row)
        rows.append(row)
    conn.execute(_INSERT, rows)
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})


def _locked_head(conn: Connection) -> tuple[int, str]:
    """The head's (seq, hash), its row locked until the transaction ends."""
    row = conn.execute(_LOCK_HEAD).first()
    if row is None:
        _restore_head(conn)
        row = conn.execute(_LOCK_HEAD).one()
    return int(row.seq), str(row.hash)


def _restore_head(conn: Connection) -> None:
    """Put back a missing head row, built from the last event.

    A new store gets the row (migration 0010, `_migrate`), but a store emptied by
    deleting every table's rows has none, and neither has one whose row was deleted:
    the registry keeps working, and `verify` checks the events, not this row alone.
    Two writers may get here at once: the insert does nothing when the other's row is
    there (on PostgreSQL it waits for the other to commit first), so both then lock
    the same row and take turns as usual.
    """
    last = conn.execute(
        select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc())
    ).first()
    seq, head = (0, GENESIS) if last is None else (int(last.seq), str(last.hash))
    if last is not None:
        log.warning("the audit log's head record was missing; rebuilt at event #%d", seq)
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"id": _HEAD_ID, "seq": seq, "hash": head}
    conn.execute(dialect.insert(audit_head).values(**values).on_conflict_do_nothing())


def new_head_row() -> dict[str, Any]:
    """The head of an empty chain (a new store's `audit_head` row)."""
    return {"id": _HEAD_ID, "seq": 0, "hash": GENESIS}
