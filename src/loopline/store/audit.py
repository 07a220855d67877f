"""The audit log: an append-only record of every change to registry objects.

Writers call `record_event` inside the transaction that makes the change, so an event
exists exactly when its change does. Events are hash-chained (`_audit_chain.py`) and
`AuditLog.verify` re-checks the chain (`_audit_verify.py` says what that does and does
not detect).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Select, func, select

from loopline.store._audit_chain import add_event
from loopline.store._schema import audit_events
from loopline.store._search import check_count
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._audit_verify import AuditChainReport
    from loopline.store._db import Database

MAX_EVENTS = 10_000
MAX_PROBLEMS = 1_000  # problems a verify describes at most (it counts them all)


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to which object, the state before and after, and why."""

    id: str
    time: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    seq: int = 0  # the position in the hash chain
    hash: str = ""
    prev_hash: str = ""


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log: `events` from position `offset` of `total` matching."""

    events: list[AuditEvent]
    total: int
    offset: int


def record_event(
    conn: Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str:
    """Append one event in the caller's transaction; returns its id. It joins the hash
    chain when the transaction commits (inside `Database.write`), or at once."""
    event_id = new_id()
    add_event(
        conn,
        {
            "id": event_id,
            "time": datetime.now(UTC),
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before_json": None if before is None else json.dumps(before, default=str),
            "after_json": None if after is None else json.dumps(after, default=str),
            "reason": reason,
        },
    )
    return event_id


class AuditLog:
    """Reading the audit log; reached as `MetadataStore.audit`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> str:
        """Append an event on its own (for actions that change nothing else)."""
        with self._db.write("record audit event") as conn:
            return record_event(
                conn,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                before=before,
                after=after,
                reason=reason,
            )

    def list_events(
        self,
        *,
        object_id: str | None = None,
        object_prefix: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Events newest first, filtered by object (exact or `churn` for everything under
        model churn), action, actor and time."""
        stmt = _filtered(
            select(audit_events),
            object_id=object_id,
            object_prefix=object_prefix,
            action=action,
            actor=actor,
            since=since,
        )
        stmt = stmt.order_by(audit_events.c.seq.desc()).limit(max(1, min(limit, MAX_EVENTS)))
        with self._db.read() as conn:
            return [_event(row) for row in conn.execute(stmt)]

    def events_page(
        self,
        *,
        object_type: str | None = None,
        object_prefix: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> AuditPage:
        """`limit` events newest first from position `offset` of those matching, and how
        many match in all: a page of the web UI's audit table. Filters as in
        `list_events`, plus the object's type (model, deployment, loop, ...).

        The count and the page are two queries, each served by the filter's index
        (actor, action, object: migration 0012), so 100,000 events answer a page in
        milliseconds on SQLite and PostgreSQL (benchmarks/bench_ui_ops.py); a count by a
        window over the page's query would read every matching event first."""
        check_count("offset", offset, 0, None)
        check_count("limit", limit, 1, MAX_EVENTS)

        def narrowed(stmt: Select[Any]) -> Select[Any]:
            return _filtered(
                stmt,
                object_type=object_type,
                object_prefix=object_prefix,
                action=action,
                actor=actor,
            )

        with self._db.read() as conn:
            counted = narrowed(select(func.count()).select_from(audit_events))
            total = int(conn.execute(counted).scalar_one())
            stmt = narrowed(select(audit_events)).order_by(audit_events.c.seq.desc())
            rows = conn.execute(stmt.offset(offset).limit(limit)).all() if offset < total else []
        return AuditPage([_event(row) for row in rows], total, offset)

    def verify(self, *, expect_head: str | None = None, max_problems: int = 20) -> AuditChainReport:
        """Walk the hash chain: every event's hash, its link to the one before, no gap, and
        the stored head. `expect_head` is a head hash recorded elsewhere earlier (see
        `loopline.store._audit_verify` for why that matters). At most `max_problems` are
        described; `problem_count` counts them all."""
        from loopline.store._audit_verify import verify_chain

        with self._db.guard("verify the audit log"):
            return verify_chain(
                self._db.engine, expect_head=expect_head, limit=max_problems, cap=MAX_PROBLEMS
            )


def _filtered(
    stmt: Select[Any],
    *,
    object_id: str | None = None,
    object_prefix: str | None = None,
    object_type: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> Select[Any]:
    """`stmt` narrowed to the events matching every filter given."""
    table = audit_events.c
    if object_id is not None:
        stmt = stmt.where(table.object_id == object_id)
    if object_prefix is not None:
        escaped = object_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(
            (table.object_id == object_prefix)
            | table.object_id.like(escaped + "/%", escape="\\")
            | table.object_id.like(escaped + "@%", escape="\\")
        )
    if object_type is not None:
        stmt = stmt.where(table.object_type == object_type)
    if action is not None:
        stmt = stmt.where(table.action == action)
    if actor is not None:
        stmt = stmt.where(table.actor == actor)
    if since is not None:
        stmt = stmt.where(table.time >= since)
    return stmt


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        time=row.time,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=None if row.before_json is None else json.loads(row.before_json),
        after=None if row.after_json is None else json.loads(row.after_json),
        reason=row.reason,
        seq=row.seq,
        hash=row.hash,
        prev_hash=row.prev_hash,
    )
