"""Answers that wait for their prediction log record (log durability "sync").

With a durable sink the service sends no answer before the sink says its record is
safe: each answered request gets a future on the event loop, the sink's `done` callback
(called from the sink's own thread, once per group commit) settles it through
`call_soon_threadsafe`, and the request awaits it before its response. A record that
cannot be made safe (a disk error, no answer within COMMIT_TIMEOUT_S) withholds the
answer: the client gets 503 and may retry, rather than an answer nobody can trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from loopline.errors import StoreUnavailable
from loopline.predictions import PredictionBatch, PredictionRecord
from loopline.serving.online._sink import DurableSink

log = logging.getLogger(__name__)

# A disk that does not answer in this time fails the request (503) instead.
COMMIT_TIMEOUT_S = 30.0

Waiter = asyncio.Future[BaseException | None]


class Commits:
    """The service's side of a DurableSink: futures in, answers out (see the module
    docstring). Every method but `close` runs on the event loop."""

    def __init__(self, sink: DurableSink) -> None:
        self.sink = sink

    def waiter(self) -> Waiter:
        """What one answer awaits: its record's commit (None: safe; else the error)."""
        return asyncio.get_running_loop().create_future()

    def commit(
        self, batch: PredictionBatch, waiting: list[Waiter], *, shadow_pending: bool = False
    ) -> None:
        """Hand `batch` to the sink; `waiting` learn the outcome."""
        loop = asyncio.get_running_loop()

        def done(error: BaseException | None) -> None:  # in the sink's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, waiting, error)

        try:
            self.sink.commit(batch, done, shadow_pending=shadow_pending)
        except Exception as exc:
            settle(waiting, exc)

    def commit_record(self, record: PredictionRecord, shadow_version: str | None) -> Waiter:
        """Commit one request of a deployment with a shadow, before its response: as
        "shadow pending" when the shadow will run (its answer follows, `shadow_answered`)."""
        waiter = self.waiter()
        if shadow_version is not None:
            record = replace(record, shadow_version=shadow_version)
        batch = PredictionBatch.of(record)
        self.commit(batch, [waiter], shadow_pending=shadow_version is not None)
        return waiter

    def shadow_answered(self, record: PredictionRecord) -> None:
        """The shadow's answer (or error) for a request committed with it pending."""
        self.sink.commit_shadow(
            record.request_id,
            predictions=record.shadow_predictions,
            probabilities=record.shadow_probabilities,
            error=record.shadow_error,
        )

    async def wait(self, waiter: Waiter) -> None:
        """Wait for a record's commit; StoreUnavailable (503) when it failed."""
        try:
            error = await asyncio.wait_for(waiter, COMMIT_TIMEOUT_S)
        except TimeoutError:
            error = TimeoutError(f"no answer from the prediction log in {COMMIT_TIMEOUT_S:.0f} s")
        if error is not None:
            log.error("an answer was withheld: its prediction log record failed: %s", error)
            raise StoreUnavailable(
                "the prediction could not be written to the prediction log, so it is not "
                "answered (log durability 'sync')",
                hint="retry; the server log says what failed",
            )

    def close(self) -> None:
        """Close the sink (it commits what is queued and spools its journal)."""
        try:
            self.sink.close()
        except Exception:
            log.exception("closing the prediction log failed")


def settle(waiting: list[Waiter], error: BaseException | None) -> None:
    """Tell the answers in `waiting` how their commit went."""
    for future in waiting:
        if not future.done():  # else the request timed out or went away
            future.set_result(error)
