"""The sink hook: every answered prediction handed to a callback, off the response path.

The app puts what it answered on a bounded queue: one `PredictionBatch` per predict
call (the requests it answered together), or, for a deployment with a shadow, one
`PredictionRecord` per request with the shadow's answer. A thread hands them to the
sink in batches (`write_many`), or request by request to a plain callable. The
prediction log (`loopline.predictions.PredictionLog`, which also defines the records) is
such a sink. A sink that raises is logged and keeps
receiving records; one that falls behind loses records (counted in
`loopline_serving_sink_dropped_total`) rather than slowing down or exhausting the
server.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopline.predictions import PredictionBatch, PredictionRecord

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
DRAIN_INTERVAL_S = 0.5


Sink = Callable[[PredictionRecord], object]


@runtime_checkable
class DurableSink(Protocol):
    """A sink the server waits for: `durable` is True when each answer's record must be
    safe before its response is sent (the prediction log with durability "sync").

    `commit(batch, done)` takes the requests one predict call answered and calls
    `done(None)` once their record is safe, or `done(error)`, from any thread;
    `shadow_pending` says the request's shadow answers later, by `commit_shadow`.
    """

    @property
    def durable(self) -> bool: ...

    def commit(
        self,
        batch: PredictionBatch,
        done: Callable[[BaseException | None], None],
        *,
        shadow_pending: bool = False,
    ) -> None: ...

    def commit_shadow(
        self,
        request_id: str,
        *,
        predictions: np.ndarray[Any, Any] | None = None,
        probabilities: np.ndarray[Any, Any] | None = None,
        error: str | None = None,
    ) -> None: ...

    def close(self) -> None: ...


def durable_sink(sink: object) -> DurableSink | None:
    """`sink` when the server must wait for it (see DurableSink), else None."""
    if isinstance(sink, DurableSink) and sink.durable is True:
        return sink
    return None


class SinkWorker:
    """Feeds records to `sink` from a daemon thread; `submit` never blocks.

    `submit` only appends to a deque (no lock, no wake-up); the thread drains it every
    `interval` seconds and hands what it found to `sink.write_many(items)` when the sink
    has it (items are PredictionRecords and PredictionBatches), else calls
    `sink(record)` for each request. Waking a thread per request cost ~100 µs
    of CPU per request on this 2-core machine (a context switch and a fight for the GIL
    with the event loop), more than a third of a small model's whole request; a thread
    that runs Python code record by record still holds the GIL in many short turns
    that the event loop waits for. One call per batch keeps both to a minimum.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        on_drop: Callable[[], None],
        max_queued: int = MAX_QUEUED,
        interval: float = DRAIN_INTERVAL_S,
    ):
        self._sink = sink
        self._on_drop = on_drop
        self._max_queued = max_queued
        self._interval = interval
        self._queue: collections.deque[PredictionRecord | PredictionBatch] = collections.deque()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set when the queue is half full: drain early
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the feeding thread (idempotent)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._feed, name="loopline-prediction-sink", daemon=True
            )
            self._thread.start()

    def submit(self, record: PredictionRecord | PredictionBatch) -> None:
        """Queue a record (or a batch of them); drop it (and count the drop) if the sink is
        too far behind."""
        queued = len(self._queue)
        if queued >= self._max_queued:
            self._on_drop()
            return
        self._queue.append(record)
        if queued == self._max_queued // 2:
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Hand over what is queued, then end the thread (waits at most `timeout`), then
        close the sink if it has a `close` (the prediction log writes out its buffer)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the prediction sink is stuck; %d records are lost", len(self._queue))
        self._thread = None
        close = getattr(self._sink, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("closing the prediction sink failed")

    def _feed(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        batch = [self._queue.popleft() for _ in range(len(self._queue))]
        if not batch:
            return
        write_many = getattr(self._sink, "write_many", None)
        if callable(write_many):
            try:
                write_many(batch)
            except Exception:
                log.exception("the prediction sink raised; %d records are skipped", len(batch))
            return
        for item in batch:
            for record in item.records() if isinstance(item, PredictionBatch) else [item]:
                try:
                    self._sink(record)
                except Exception:
                    log.exception("the prediction sink raised; the record is skipped")
