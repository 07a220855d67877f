"""The audit log through a platform server (`AuditLog`'s public methods). Over HTTP an
event is recorded under the authenticated caller, whatever `actor` says."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loopline.store._audit_verify import AuditChainReport
from loopline.store.audit import MAX_EVENTS, AuditEvent, AuditPage
from loopline.store.remote._codec import decode, encode
from loopline.store.remote._session import RemoteSession


class RemoteAuditLog:
    """`MetadataStore.audit` of a remote store."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

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
        """Append an event on its own; its id (not retried: a repeat would append twice)."""
        body = {
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before": before,
            "after": after,
            "reason": reason,
        }
        return decode(str, self._session.call("POST", "/audit/events", body=body)["id"])  # type: ignore[no-any-return]

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
        """Events newest first, filtered by object (exact, or everything under a model),
        action, actor and time (one request)."""
        given = {
            "object_id": object_id,
            "object_prefix": object_prefix,
            "action": action,
            "actor": actor,
            "since": encode(since),
        }
        params: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        params["limit"] = max(1, min(limit, MAX_EVENTS))
        answer = self._session.call("GET", "/audit/events", params=params)
        return decode(list[AuditEvent], answer)  # type: ignore[no-any-return]

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
        """A page of the events matching, newest first, and how many match (one request)."""
        given = {
            "object_type": object_type,
            "object_prefix": object_prefix,
            "action": action,
            "actor": actor,
        }
        params: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        params.update(offset=offset, limit=limit)
        answer = self._session.call("GET", "/audit/events-page", params=params)
        return decode(AuditPage, answer)  # type: ignore[no-any-return]

    def verify(self, *, expect_head: str | None = None, max_problems: int = 20) -> AuditChainReport:
        """Walk the hash chain on the server (`AuditLog.verify`); its report."""
        params: dict[str, Any] = {"max_problems": max_problems}
        if expect_head is not None:
            params["expect_head"] = expect_head
        answer = self._session.call("GET", "/audit/verify", params=params)
        return decode(AuditChainReport, answer)  # type: ignore[no-any-return]
