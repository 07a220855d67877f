"""The sink hook: every answered prediction handed to a callback, off the response path.

The app puts one `PredictionRecord` per successful request on a bounded queue; a thread
calls `sink(record)` for each. The prediction log (and shadow comparisons) will be
sinks. A sink that raises is logged and keeps receiving records; one that falls behind
loses records (counted in `loopline_serving_sink_dropped_total`) rather than slowing
down or exhausting the server.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from loopline.serving._inputs import Block

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
_STOP = object()


@dataclass(frozen=True)
class PredictionRecord:
    """One answered request: who asked, which version answered, what it said, how fast.

    `inputs` are the request's rows ({field: value}, as sent); `predictions` and
    `probabilities` are the model's outputs for them (numpy arrays); `latency_ms` runs
    from the request's arrival to its predictions. With a shadow model, `shadow_version`
    names it and `shadow_predictions`/`shadow_probabilities` hold what it said, or
    `shadow_error` why it failed (the shadow never answers the client).
    """

    request_id: str
    time: datetime
    deployment: str
    model_version: str
    runtime_version: str
    endpoint: str
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    latency_ms: float
    block: Block = field(repr=False)
    shadow_version: str | None = None
    shadow_predictions: np.ndarray[Any, Any] | None = None
    shadow_probabilities: np.ndarray[Any, Any] | None = None
    shadow_error: str | None = None

    @property
    def input_names(self) -> tuple[str, ...]:
        """The input columns, in signature order."""
        return self.block.names

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The request's rows as {field: value} dicts."""
        return self.block.rows()

    @property
    def columns(self) -> dict[str, Sequence[Any]]:
        """The request's values column by column (what a columnar log stores)."""
        return dict(zip(self.block.names, self.block.columns(), strict=True))


Sink = Callable[[PredictionRecord], object]


class SinkWorker:
    """Feeds records to `sink` from a daemon thread; `submit` never blocks."""

    def __init__(self, sink: Sink, *, on_drop: Callable[[], None], max_queued: int = MAX_QUEUED):
        self._sink = sink
        self._on_drop = on_drop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the feeding thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._feed, name="loopline-prediction-sink", daemon=True
            )
            self._thread.start()

    def submit(self, record: PredictionRecord) -> None:
        """Queue a record; drop it (and count the drop) if the sink is too far behind."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._on_drop()

    def stop(self, timeout: float = 5.0) -> None:
        """Hand over what is queued, then end the thread (waits at most `timeout`)."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("the prediction sink is stuck; %d records are lost", self._queue.qsize())
        self._thread.join(timeout)
        self._thread = None
        close = getattr(self._sink, "close", None)
        if callable(close):
            try:
                close()  # e.g. the prediction log writes out what it buffers
            except Exception:
                log.exception("closing the prediction sink failed")

    def _feed(self) -> None:
        while True:
            record = self._queue.get()
            if record is _STOP:
                return
            try:
                self._sink(record)  # type: ignore[arg-type]
            except Exception:
                log.exception("the prediction sink raised; the record is skipped")
