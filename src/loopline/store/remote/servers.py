"""Server heartbeats through a platform server (`ServerStore`'s methods)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

from loopline.store.remote._codec import decode, encode
from loopline.store.remote._session import RemoteSession
from loopline.store.servers import PRUNE_AFTER, Heartbeat, ServedState, ServerIdentity


class RemoteServerStore:
    """`MetadataStore.servers` of a remote store."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def beat(self, server: ServerIdentity, served: Sequence[ServedState]) -> datetime:
        """Replace this server's heartbeats by `served` (a PUT: repeating it changes
        nothing but the time seen)."""
        path = f"/servers/{quote(server.server_id, safe='')}/heartbeats"
        body = {"server": encode(server), "served": encode(list(served))}
        answer = self._session.call("PUT", path, body=body)
        return decode(datetime, answer["last_seen"])  # type: ignore[no-any-return]

    def remove(self, server_id: str) -> None:
        """Forget a server that stopped cleanly."""
        self._session.call("DELETE", f"/servers/{quote(server_id, safe='')}")

    def prune(self, older_than: timedelta = PRUNE_AFTER) -> int:
        """Delete heartbeats not renewed for `older_than`; returns how many."""
        body = {"older_than_seconds": older_than.total_seconds()}
        answer = self._session.call("POST", "/servers/prune", body=body, idempotent=True)
        return decode(int, answer["pruned"])  # type: ignore[no-any-return]

    def of_deployments(self, names: Sequence[str] | None = None) -> list[Heartbeat]:
        """The heartbeats of the named deployments (all: None), newest server first."""
        if names is not None and not names:
            return []
        params = None if names is None else {"deployment": list(names)}
        answer = self._session.call("GET", "/servers/heartbeats", params=params)
        return decode(list[Heartbeat], answer)  # type: ignore[no-any-return]
