"""The heartbeat of a server of stored deployments: what it actually serves, in the store.

`loopline deploy serve` keeps serving the last good revision when a new one cannot load;
the stored deployment then names a revision nobody serves. So each worker process
writes, per deployment, the revision and versions it serves, its state and its last
load error (store/servers.py has the table):

- at start, then within `CHECK_SECONDS` of any change of what it serves or of a load
  attempt's outcome, and every `interval` seconds regardless (so that readers can tell
  a live server from a dead one: three missed beats make a heartbeat stale);
- from a daemon thread, never on the request path: one transaction per beat (a delete
  and an insert of this server's rows);
- a store that is down is logged once (then again when it is back) and retried at the
  next beat; serving never notices;
- on a clean shutdown the rows are deleted; a killed server's rows go stale, and the
  next server to start prunes those older than a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.redact import redact_text
from loopline.store.servers import ServedState, ServerIdentity

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopline.serving.online._service import Service
    from loopline.serving.online._stored import StoredDeployments
    from loopline.store.servers import ServerStore

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 10.0
CHECK_SECONDS = 0.25  # how soon a change of what is served reaches the store
MIN_SECONDS, MAX_SECONDS = 0.1, 3600.0


def check_heartbeat_seconds(seconds: object) -> float:
    """A heartbeat interval: a number of seconds in [0.1, 3600] (InvalidInput otherwise)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInput(f"the heartbeat interval must be a number of seconds, got {seconds!r}")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:  # NaN fails both comparisons
        raise InvalidInput(
            f"the heartbeat interval must be between {MIN_SECONDS:g} and {MAX_SECONDS:g} "
            f"seconds, got {seconds}"
        )
    return float(seconds)


def served_states(service: Service, source: StoredDeployments) -> list[ServedState]:
    """What `service` serves now for each of `source`'s deployments, with load errors."""
    endpoints = dict(service.deployments)  # a copy: the event loop swaps endpoints
    errors = dict(source.errors)
    found = []
    for name in sorted(source.names()):
        endpoint = endpoints.get(name)
        error = errors.get(name)
        if endpoint is None:
            failed = error is not None or service.failure is not None
            state, revision, models = ("failed" if failed else "loading"), None, {}
        else:
            state, revision = "serving", endpoint.revision
            models = {k: v for k, v in endpoint.describe().items() if k != "revision"}
        found.append(
            ServedState(
                deployment=name,
                state=state,
                revision=revision,
                models=models,
                error=None if error is None else redact_text(error[1]),
                error_revision=None if error is None else error[0],
                error_at=None if error is None else error[2],
            )
        )
    return found


class HeartbeatWriter:
    """Writes `snapshot()` to the store from a daemon thread (see the module docstring)."""

    def __init__(
        self,
        snapshot: Callable[[], list[ServedState]],
        store: Callable[[], ServerStore],
        *,
        address: str,
        interval: float = DEFAULT_HEARTBEAT_SECONDS,
    ) -> None:
        self.identity = ServerIdentity(
            server_id=uuid.uuid4().hex,
            host=socket.gethostname(),
            address=address,
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            interval_seconds=check_heartbeat_seconds(interval),
        )
        self._snapshot = snapshot
        self._store = store
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.beats = 0  # written so far (for logs and tests of the writer itself)

    def start(self) -> None:
        """Start the thread; its first beat is written at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="loopline-heartbeat", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread and delete this server's heartbeats (one try: a store that is
        down leaves them to go stale)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None
        try:
            self._store().remove(self.identity.server_id)
        except Exception as exc:
            log.warning("the server's heartbeat could not be removed (it goes stale): %s", exc)

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # an old server's rows; never worth failing for
            self._store().prune()
        attempted: list[ServedState] | None = None
        due = 0.0
        while not self._stopping.is_set():
            try:
                current = self._snapshot()
            except Exception:  # a bug: keep beating with what was last seen
                log.exception("reading what the server serves failed")
                current = attempted or []
            # a change is written at once; a failed write waits for the next beat
            if current != attempted or time.monotonic() >= due:
                self._write(current)
                attempted = current
                due = time.monotonic() + self.identity.interval_seconds
            self._stopping.wait(min(CHECK_SECONDS, self.identity.interval_seconds))

    def _write(self, served: list[ServedState]) -> bool:
        try:
            self._store().beat(self.identity, served)
        except Exception as exc:  # the store is down or refuses: serving goes on
            if not self._failing:
                log.warning(
                    "the server's heartbeat cannot reach the metadata store (serving goes "
                    "on; retrying every %g s): %s",
                    self.identity.interval_seconds,
                    exc,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("the server's heartbeat reaches the metadata store again")
        self._failing = False
        self.beats += 1
        return True


def attach_heartbeat(
    app: FastAPI, source: StoredDeployments, *, address: str, interval: float
) -> HeartbeatWriter:
    """Make `app` beat while it runs: started after the service starts, stopped (its rows
    deleted) before the service stops."""
    from loopline.project import stores

    service: Service = app.state.service
    opened = stores()  # the beat runs in a thread of its own: it keeps the caller's stores
    writer = HeartbeatWriter(
        lambda: served_states(service, source),
        lambda: opened.metadata.servers,
        address=address,
        interval=interval,
    )
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            writer.start()
            try:
                yield state
            finally:
                await asyncio.to_thread(writer.stop)

    app.router.lifespan_context = lifespan
    return writer
