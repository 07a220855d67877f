"""Server heartbeats in the metadata database: what each running server actually serves.

A deployment's stored configuration says what should be served; a server that cannot
load a new revision keeps serving the last good one. So each server process writes a
heartbeat per deployment it serves (the revision and versions it serves, its state, the
last load error) every few seconds, and deletes it when it stops cleanly. A heartbeat
whose `last_seen` is older than three of its intervals belongs to a server that died or
lost the store: readers show it as stale, never as live. Rows older than a day are
pruned by the next server that starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, select

from loopline.store._schema import server_heartbeats

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loopline.store._db import Database

STALE_AFTER_BEATS = 3
PRUNE_AFTER = timedelta(days=1)
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ServedState:
    """What one server process serves for one deployment.

    `state` is "serving" (`revision` answers requests), "loading" (nothing loaded yet)
    or "failed" (nothing could be loaded); `models` names the versions by role (as the
    server's /health/ready does); `error` is the last load error, of `error_revision`,
    at `error_at` (None once a later revision loaded).
    """

    deployment: str
    state: str
    revision: int | None = None
    models: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_revision: int | None = None
    error_at: datetime | None = None


@dataclass(frozen=True)
class ServerIdentity:
    """One server process: a random id, the machine, the address it listens on."""

    server_id: str
    host: str
    address: str
    pid: int
    started_at: datetime
    interval_seconds: float


@dataclass(frozen=True)
class Heartbeat:
    """A stored heartbeat: the server, what it serves for one deployment, when last seen."""

    server: ServerIdentity
    served: ServedState
    last_seen: datetime

    def stale(self, now: datetime | None = None) -> bool:
        """Not seen for three heartbeat intervals: the server died or lost the store."""
        now = now or datetime.now(UTC)
        limit = timedelta(seconds=self.server.interval_seconds * STALE_AFTER_BEATS)
        return now - self.last_seen > limit


class ServerStore:
    """SQL operations on heartbeats; reached as `MetadataStore.servers`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def beat(self, server: ServerIdentity, served: Sequence[ServedState]) -> datetime:
        """Replace this server's heartbeats by `served`, seen now (one transaction)."""
        now = datetime.now(UTC)
        with self._db.write("server heartbeat") as conn:
            conn.execute(
                delete(server_heartbeats).where(server_heartbeats.c.server_id == server.server_id)
            )
            if served:
                conn.execute(server_heartbeats.insert(), [_row(server, s, now) for s in served])
        return now

    def remove(self, server_id: str) -> None:
        """Forget a server that stopped cleanly."""
        with self._db.write("remove server heartbeat") as conn:
            conn.execute(
                delete(server_heartbeats).where(server_heartbeats.c.server_id == server_id)
            )

    def prune(self, older_than: timedelta = PRUNE_AFTER) -> int:
        """Delete heartbeats not renewed for `older_than`; returns how many."""
        cutoff = datetime.now(UTC) - older_than
        with self._db.write("prune server heartbeats") as conn:
            done = conn.execute(
                delete(server_heartbeats).where(server_heartbeats.c.last_seen < cutoff)
            )
        return int(done.rowcount or 0)

    def of_deployments(self, names: Sequence[str] | None = None) -> list[Heartbeat]:
        """The heartbeats of the named deployments (all: None), newest server first."""
        query = select(server_heartbeats).order_by(
            server_heartbeats.c.deployment,
            server_heartbeats.c.started_at.desc(),
            server_heartbeats.c.server_id,
        )
        if names is not None:
            if not names:
                return []
            query = query.where(server_heartbeats.c.deployment.in_(list(names)))
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_heartbeat(row) for row in rows]


def _row(server: ServerIdentity, served: ServedState, now: datetime) -> dict[str, Any]:
    error = served.error
    if error is not None and len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 3] + "..."
    return {
        "server_id": server.server_id,
        "deployment": served.deployment,
        "host": server.host[:256],
        "address": server.address[:300],
        "pid": server.pid,
        "started_at": server.started_at,
        "last_seen": now,
        "interval_s": server.interval_seconds,
        "state": served.state,
        "revision": served.revision,
        "models_json": json.dumps(served.models, sort_keys=True, allow_nan=False),
        "error": error,
        "error_revision": served.error_revision,
        "error_at": served.error_at,
    }


def _heartbeat(row: Row[Any]) -> Heartbeat:
    server = ServerIdentity(
        server_id=str(row.server_id),
        host=str(row.host),
        address=str(row.address),
        pid=int(row.pid),
        started_at=row.started_at,
        interval_seconds=float(row.interval_s),
    )
    served = ServedState(
        deployment=str(row.deployment),
        state=str(row.state),
        revision=None if row.revision is None else int(row.revision),
        models=json.loads(row.models_json),
        error=row.error,
        error_revision=None if row.error_revision is None else int(row.error_revision),
        error_at=row.error_at,
    )
    return Heartbeat(server=server, served=served, last_seen=row.last_seen)
