"""Shared benchmark helpers: median timing and one Rich table of figures per area.

Every figure is reported next to a reference measured in the same run on the same
machine, so the ratio means something even on a noisy or slow box.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One figure: our value, the reference value (same unit), and the goal as text."""

    figure: str
    ours: float
    reference: float
    goal: str
    unit: str = "ms"
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        """ours / reference (for a time, above 1 means slower than the reference)."""
        return self.ours / self.reference if self.reference else float("inf")


def median_time(
    fn: Callable[[], object], repeat: int = 5, *, setup: Callable[[], object] | None = None
) -> float:
    """The median wall time of `fn()` in seconds over `repeat` runs.

    `setup`, if given, runs untimed before each run (e.g. to give each run a fresh
    folder, so that nothing is cached or deduplicated between runs).
    """
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_times(
    fns: Sequence[Callable[[], object]],
    repeat: int = 5,
    *,
    setup: Callable[[], object] | None = None,
) -> list[float]:
    """Like `median_time` for several functions, run in turns (a, b, a, b, ...).

    Taking turns spreads a burst of load from elsewhere on the machine over all of
    them, so that their ratio stays meaningful on a shared box.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, fn_times in zip(fns, times, strict=True):
            fn_times.append(median_time(fn, 1, setup=setup))
    return [statistics.median(fn_times) for fn_times in times]


def print_table(title: str, rows: Sequence[Row], console: Console | None = None) -> None:
    """Print rows as a table: figure, ours, reference, ratio, goal."""
    table = Table(title=title)
    table.add_column("figure")
    for column in ("ours", "reference", "ratio"):
        table.add_column(column, justify="right")
    table.add_column("goal")
    for row in rows:
        table.add_row(
            row.figure,
            f"{row.ours:,.1f} {row.unit}",
            f"{row.reference:,.1f} {row.unit}",
            f"{row.ratio:.2f}x",
            row.goal,
        )
    (console or Console()).print(table)


@contextmanager
def served_in_thread(app: Any) -> Iterator[str]:
    """`app` under uvicorn in a thread on a free port of 127.0.0.1, once its
    /api/v1/health answers; its base URL."""
    import httpx
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/api/v1/health", timeout=2).raise_for_status()
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
