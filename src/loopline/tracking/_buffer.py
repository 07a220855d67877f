"""The metric buffer: `log_metric` appends in memory; a background thread writes.

A training loop never waits on the database. Points are appended to a deque (its
append and popleft are atomic, so no lock is taken on the hot path) and a daemon thread
writes them every `interval` seconds, or sooner when many are waiting. A write that
fails (database locked past its timeout, network gone) keeps the points and is retried
at the next tick; `flush()` and `close()` write synchronously and raise on failure.

What a SIGKILL loses: the points logged since the last successful background write,
i.e. at most `interval` seconds of metrics (1 s by default; set
`[tracking] metric_flush_interval` or LOOPLINE_METRIC_FLUSH_INTERVAL). Everything
written before is committed in the database; the run stays RUNNING until someone ends
it (`loopline runs end ID --status FAILED`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from loopline.store import MetricRow

log = logging.getLogger(__name__)

Point = MetricRow
EAGER_BATCH = 20_000  # wake the writer early once this many points wait
MAX_BATCH = 200_000  # points per database transaction


class MetricBuffer:
    """Buffers metric points and writes them with `write` off the caller's thread."""

    def __init__(self, write: Callable[[list[Point]], None], interval: float) -> None:
        self._write = write
        self._interval = interval
        self._points: deque[Point] = deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopline-metrics", daemon=True)
        self._thread.start()

    def append(self, point: Point) -> None:
        self._points.append(point)
        if len(self._points) >= EAGER_BATCH:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._points)

    def flush(self) -> None:
        """Write every buffered point now; raises if the store refuses them."""
        with self._flush_lock:
            while self._points:
                batch = self._take()
                try:
                    self._write(batch)
                except BaseException:
                    self._points.extendleft(reversed(batch))  # keep order for the retry
                    raise

    def close(self) -> None:
        """Stop the background writer and write what is left (raises on failure)."""
        self._closed.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def _take(self) -> list[Point]:
        count = min(len(self._points), MAX_BATCH)
        pop = self._points.popleft
        return [pop() for _ in range(count)]

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                self.flush()
            except Exception as exc:  # retried at the next tick; close() raises
                log.warning("writing %d metric points failed, will retry: %s", len(self), exc)
