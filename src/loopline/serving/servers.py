"""Which revision the running servers of a deployment actually serve.

    server_status("churn")     -> [ServerStatus, ...], one per server process
    servers_by_deployment()    -> {deployment name: [ServerStatus, ...]}

A server keeps serving the last good revision when a new one cannot load, so the
stored deployment alone does not say what answers requests. Servers started by
`loopline deploy serve` write heartbeats (serving/online/_heartbeat.py); these functions read
them and compare each with the deployment's current revision. A heartbeat not renewed
for three of its intervals is reported as stale (`live` False): its server died, hangs
or cannot reach the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.project import Stores
    from loopline.store.servers import Heartbeat


@dataclass(frozen=True)
class ServerStatus:
    """One server process's view of one deployment.

    `address` is where it listens (host:port), `host` the machine, `pid` the process;
    `revision` is what it serves (None while nothing is loaded), `current_revision` the
    deployment's; `state` is "serving", "loading" or "failed", and `live` says whether
    its heartbeat is recent. `error` is its last load error (of `error_revision`, at
    `error_at`); `models` names the versions it serves by role.
    """

    deployment: str
    server_id: str
    host: str
    address: str
    pid: int
    started_at: datetime
    last_seen: datetime
    live: bool
    state: str
    revision: int | None
    current_revision: int | None
    models: dict[str, Any]
    error: str | None
    error_revision: int | None
    error_at: datetime | None

    @property
    def up_to_date(self) -> bool:
        """A live server serving the deployment's current revision."""
        return self.live and self.state == "serving" and self.revision == self.current_revision

    def summary(self) -> str:
        """One line: 'serving revision 3; revision 4 failed to load: <error>'."""
        if not self.live:
            return (
                f"stale: no heartbeat since {self.last_seen:%Y-%m-%d %H:%M:%S} UTC "
                "(the server stopped without saying so, or cannot reach the store)"
            )
        if self.state == "serving":
            text = f"serving revision {self.revision}"
        elif self.state == "failed":
            text = "serving nothing"
        else:
            text = "loading"
        current = self.current_revision
        if self.error is not None and self.error_revision is not None:
            if self.error_revision != self.revision:
                text += f"; revision {self.error_revision} failed to load: {self.error}"
        elif current is not None and self.revision != current and self.state == "serving":
            text += f"; revision {current} not loaded yet"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings)."""
        return {
            "deployment": self.deployment,
            "server_id": self.server_id,
            "host": self.host,
            "address": self.address,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "live": self.live,
            "state": self.state if self.live else "stale",
            "revision": self.revision,
            "current_revision": self.current_revision,
            "up_to_date": self.up_to_date,
            "models": self.models,
            "error": self.error,
            "error_revision": self.error_revision,
            "error_at": None if self.error_at is None else self.error_at.isoformat(),
            "summary": self.summary(),
        }


def server_status(name: str, *, stores: Stores | None = None) -> list[ServerStatus]:
    """The servers that serve deployment `name`, live ones first, each with the revision
    it serves and its last load error. Raises NotFound for an unknown deployment."""
    opened = _stores(stores)
    record = opened.metadata.deployments.get(check_deployment_name(name))
    beats = opened.metadata.servers.of_deployments([record.name])
    return _statuses(beats, {record.name: record.revision})


def servers_by_deployment(*, stores: Stores | None = None) -> dict[str, list[ServerStatus]]:
    """Every deployment's servers, as `server_status` gives them (one query for all)."""
    opened = _stores(stores)
    current = {record.name: record.revision for record in opened.metadata.deployments.all()}
    found: dict[str, list[ServerStatus]] = {}
    for status in _statuses(opened.metadata.servers.of_deployments(), current):
        found.setdefault(status.deployment, []).append(status)
    return found


def servers_summary(statuses: list[ServerStatus], current_revision: int) -> str:
    """A short cell for `deploy ls`: 'live r4', 'r3 of r4 ⚠', 'failed ⚠' or 'no server'."""
    live = [s for s in statuses if s.live]
    if not live:
        return "no server" if not statuses else "no server (stale)"
    count = f" ×{len(live)}" if len(live) > 1 else ""
    if all(s.up_to_date for s in live):
        return f"live r{current_revision}{count}"
    served = sorted({s.revision for s in live if s.revision is not None})
    if not served:
        return "failed ⚠" if any(s.state == "failed" for s in live) else "loading"
    revisions = ",".join(f"r{r}" for r in served)
    return f"{revisions} of r{current_revision} ⚠{count}"


def _statuses(beats: list[Heartbeat], current: dict[str, int]) -> list[ServerStatus]:
    now = datetime.now(UTC)
    found = [
        ServerStatus(
            deployment=beat.served.deployment,
            server_id=beat.server.server_id,
            host=beat.server.host,
            address=beat.server.address,
            pid=beat.server.pid,
            started_at=beat.server.started_at,
            last_seen=beat.last_seen,
            live=not beat.stale(now),
            state=beat.served.state,
            revision=beat.served.revision,
            current_revision=current.get(beat.served.deployment),
            models=beat.served.models,
            error=beat.served.error,
            error_revision=beat.served.error_revision,
            error_at=beat.served.error_at,
        )
        for beat in beats
    ]
    return sorted(found, key=lambda s: (s.deployment, not s.live))  # stable: newest first


def _stores(stores: Stores | None) -> Stores:
    if stores is not None:
        return stores
    from loopline.project import stores as current

    return current()
