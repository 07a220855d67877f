"""The metric buffer: `log_metric` appends in memory; a background thread writes.

A training loop does not wait on the database while the writer keeps up. Points are
appended to a deque (its append and popleft are atomic, so no lock is taken on the hot
path) and a daemon thread writes them every half `interval`, or sooner when many are
waiting. A write that fails (database locked past its timeout, network gone) keeps the
points and is retried; `flush()` and `close()` write synchronously and raise on failure.

Each batch gets a random id, and a batch whose write failed is sent again whole, with
the same id, before anything newer: the store applies an id once (store/_metrics.py), so
a batch that was stored but whose answer never came back (a connection dropped after the
commit, a platform server killed before it answered) is not stored twice.

What a SIGKILL loses: at most `interval` seconds of metric points (1 s by default; set
`[tracking] metric_flush_interval` or LOOPLINE_METRIC_FLUSH_INTERVAL), at any logging
rate. The buffer knows the time up to which every point is committed; when `log_metric`
finds that older than `interval` (the writer fell behind: a loop logging faster than
the database writes, or a writer starved of the GIL by that loop), the logging call
itself writes what is buffered before it returns. That bounds the buffer by age, which is
what a crash loses, rather than by a count that means a different time at every rate.
Only while the store refuses writes can the backlog grow past the bound (log_metric
then retries at most once per interval and logs a warning; it does not raise).
Everything written before is committed in the database; the run stays RUNNING until
someone ends it (`loopline runs end ID --status FAILED`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from loopline.store import MetricRow

log = logging.getLogger(__name__)

Point = MetricRow
EAGER_BATCH = 20_000  # wake the writer early once this many points wait
MAX_BATCH = 200_000  # points per database transaction


class MetricBuffer:
    """Buffers metric points and writes them with `write` off the caller's thread.

    `interval` is the bound on what a crash may lose, in seconds of logging: no point
    stays unwritten longer than that while `append` is being called.
    """

    def __init__(self, write: Callable[[list[Point], str], None], interval: float) -> None:
        self._write = write  # (points, batch id)
        self._interval = interval
        self._points: deque[Point] = deque()
        self._unsent: tuple[list[Point], str] | None = None  # a batch whose write failed
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        # Every point appended before this monotonic time is committed (or was never
        # there); set at the start of each flush that then succeeded.
        self._written_until = time.monotonic()
        self._pressure_paused_until = 0.0  # after a failed early write: no retry before
        self._thread = threading.Thread(target=self._run, name="loopline-metrics", daemon=True)
        self._thread.start()

    def append(self, point: Point) -> None:
        self._points.append(point)
        now = time.monotonic()
        if now - self._written_until > self._interval:
            self._catch_up(now)
        elif len(self._points) >= EAGER_BATCH:
            self._wake.set()

    def __len__(self) -> int:
        unsent = self._unsent
        return len(self._points) + (0 if unsent is None else len(unsent[0]))

    def flush(self) -> None:
        """Write every buffered point now; raises if the store refuses them (the batch
        that failed is kept, with its id, and sent first next time)."""
        with self._flush_lock:
            started = time.monotonic()
            while self._unsent is not None or self._points:
                if self._unsent is None:
                    self._unsent = (self._take(), os.urandom(16).hex())
                batch, batch_id = self._unsent
                self._write(batch, batch_id)
                self._unsent = None
            self._written_until = max(self._written_until, started)

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

    def _catch_up(self, now: float) -> None:
        """The writer is behind: write from the caller's thread before it logs more.

        Waiting on the flush lock releases the GIL, so a background write in progress
        finishes at full speed; what it did not take is written here.
        """
        if now < self._pressure_paused_until:
            return
        try:
            self.flush()
        except Exception as exc:  # the store is down: keep the points, do not fail training
            self._pressure_paused_until = time.monotonic() + self._interval
            log.warning("writing %d metric points failed, will retry: %s", len(self), exc)

    def _run(self) -> None:
        """Write every half interval, so that in a steady state no point gets near the
        bound and `append` never has to write itself."""
        period = self._interval / 2
        attempted = time.monotonic()
        while not self._closed.is_set():
            due = max(self._written_until, attempted) + period
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._closed.is_set():
                return
            attempted = time.monotonic()
            try:
                self.flush()
            except Exception as exc:  # retried after a pause; close() raises
                log.warning("writing %d metric points failed, will retry: %s", len(self), exc)
                self._closed.wait(period)  # not at once: the eager wake-ups would spin
