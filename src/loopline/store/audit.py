"""The audit log: an append-only record of every change to registry objects.

Writers call `record_event` inside the transaction that makes the change, so an event
exists exactly when its change does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from loopline.store._schema import audit_events
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

MAX_EVENTS = 10_000


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
    """Append one event in the caller's transaction; returns its id."""
    event_id = new_id()
    conn.execute(
        audit_events.insert().values(
            id=event_id,
            time=datetime.now(UTC),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before_json=None if before is None else json.dumps(before, default=str),
            after_json=None if after is None else json.dumps(after, default=str),
            reason=reason,
        )
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
        stmt = select(audit_events).order_by(audit_events.c.seq.desc())
        if object_id is not None:
            stmt = stmt.where(audit_events.c.object_id == object_id)
        if object_prefix is not None:
            escaped = object_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(
                (audit_events.c.object_id == object_prefix)
                | audit_events.c.object_id.like(escaped + "/%", escape="\\")
                | audit_events.c.object_id.like(escaped + "@%", escape="\\")
            )
        if action is not None:
            stmt = stmt.where(audit_events.c.action == action)
        if actor is not None:
            stmt = stmt.where(audit_events.c.actor == actor)
        if since is not None:
            stmt = stmt.where(audit_events.c.time >= since)
        stmt = stmt.limit(max(1, min(limit, MAX_EVENTS)))
        with self._db.read() as conn:
            return [
                AuditEvent(
                    id=row.id,
                    time=row.time,
                    actor=row.actor,
                    action=row.action,
                    object_type=row.object_type,
                    object_id=row.object_id,
                    before=None if row.before_json is None else json.loads(row.before_json),
                    after=None if row.after_json is None else json.loads(row.after_json),
                    reason=row.reason,
                )
                for row in conn.execute(stmt)
            ]
