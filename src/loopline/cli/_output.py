"""Printing: one console for results, one for errors, and the number format."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from rich.console import Console


PIPED_WIDTH = 10_000  # columns of a console writing to a pipe or a file


@cache
def _console(stderr: bool) -> Console:
    """The console of stdout or stderr. Rich lays out for 80 columns when the stream is
    not a terminal, which cuts tables piped to `grep`, `less -S` or a file (a long
    experiment name ends in "…"); a pipe has no width, so nothing is cut there unless
    COLUMNS (which Rich reads) asks for a width."""
    from rich.console import Console

    made = Console(stderr=stderr, highlight=False)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        made.width = PIPED_WIDTH
    return made


def piped() -> bool:
    """True when results go to a pipe or a file, where tables show every value whole."""
    return not _console(False).is_terminal


class _LazyConsole:
    """A Rich console created on first use, so `--help` does not import Rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(_console(self._stderr), name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def note_cut(shown: int, noun: str, option: str) -> None:
    """One line on stderr when a listing shows fewer rows than matched (the command asked
    for one more than its limit to know), so that a cut never passes for the whole."""
    err.print(
        f"[dim]showing the first {shown:,} {noun}; more matched ({option} shows more)[/]",
        soft_wrap=True,
    )


def number(value: float | None, digits: int = 6) -> str:
    """Metric values as stored, NaN and infinities included."""
    if value is None:
        return ""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def moment(value: datetime | None, *, short: bool = False) -> str:
    """Local time; `short` drops the year and seconds, for tables."""
    if value is None:
        return ""
    return value.astimezone().strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size(count: int | None) -> str:
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


STATUS_STYLE = {"RUNNING": "cyan", "FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}


def status(text: str) -> str:
    return f"[{STATUS_STYLE.get(text, 'white')}]{text}[/]"


class Bar(ABC):
    """A Rich progress bar fed by the library's progress callbacks: `on_total(n)` sets the
    total, `advance(n)` moves it. Hidden when stderr is not a terminal, so logs stay clean.
    Subclasses' `_columns()` (Rich progress columns) say what the counts are.

    The bar starts at the first count to show (a total above 0 or an advance): a command
    with nothing to do (an unchanged `data add`) neither draws it nor imports
    `rich.progress` (~25 ms)."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._progress: Any = None  # a started rich.progress.Progress
        self._task: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def on_total(self, total: int) -> None:
        if total > 0 and self._start():
            self._progress.update(self._task, total=total)

    def advance(self, count: int) -> None:
        if self._start():
            self._progress.advance(self._task, count)

    def _start(self) -> bool:
        """Start the bar once; False when it is hidden (stderr is not a terminal)."""
        if self._progress is None:
            if not _console(True).is_terminal:
                return False
            from rich.progress import Progress

            self._progress = Progress(
                "[progress.description]{task.description}",
                *self._columns(),
                console=_console(True),
                transient=True,
            )
            self._task = self._progress.add_task(self._description, total=None)
            self._progress.start()
        return True

    @abstractmethod
    def _columns(self) -> list[Any]:
        """The Rich progress columns after the description."""


class ByteProgress(Bar):
    """A progress bar for byte counts: size done, speed, time left."""

    def _columns(self) -> list[Any]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        return [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]


class RowProgress(Bar):
    """A progress bar for row counts: rows done of the total, time left."""

    def _columns(self) -> list[Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

        return [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
