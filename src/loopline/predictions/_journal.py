"""The prediction log's journal: with durability "sync" (or "fsync"), each answer is in
the journal file before its response is sent.

`Journal.commit(batch, done)` queues a batch of answered requests; the journal's thread
appends everything queued to the current segment file in one write (with "fsync", then
calls fdatasync), then `done(None)` for each (or `done(error)` when the disk failed: the
server then answers 503 rather than an answer it cannot trace). Requests that arrive
during one write are committed together by the next one (group commit): under load one
write (and one fdatasync) covers many requests.

Why two levels: a record handed to the kernel by write() survives a kill of the process
(SIGKILL, the OOM killer, a crashed worker), which is what "sync" promises; it does not
survive a crash of the machine or a power cut, which "fsync" adds, as far as the disk
honours its flushes, at the price of one fdatasync per group (~1-4 ms on this disk).

Segments live in `prediction-log/journal/`; their format (frames of JSON entries, a torn
frame ending the segment) is in _journal_frames.py. A request committed before its
shadow answered is completed by a shadow entry in the same segment.

After `rotate_rows` rows or `rotate_seconds` the segment is sealed and a new one
started; once the shadows it waits for have answered (or SHADOW_WAIT_S has passed) it
is `ready`, and the prediction log turns it into Parquet spool files, then deletes it.
A process holds an exclusive flock on each segment it owns until it deletes it, so a
segment nobody holds is one whose process died: the next prediction log of the project
`claim`s it and converts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopline.errors import InvalidInput
from loopline.predictions._journal_frames import append_frame, encode_batch, encode_entry
from loopline.predictions._parquet import sync_folder
from loopline.predictions._records import PredictionBatch

log = logging.getLogger(__name__)

SHADOW_WAIT_S = 30.0

Done = Callable[[BaseException | None], None]


@dataclass(eq=False)
class Segment:
    """One journal file, open and locked by this process until it is discarded."""

    path: Path
    fd: int
    rows: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    sealed_at: float | None = None
    waiting: set[str] = field(default_factory=set)  # request ids whose shadow is pending

    @property
    def name(self) -> str:
        return self.path.stem

    def discard(self) -> None:
        """Delete the file (its records are in the spool now), then let go of it."""
        _delete_locked(self.path, self.fd)


class Journal:
    """Group-committed, fdatasync'ed appends of answered requests (see the module
    docstring). `on_ready` is called (from the journal's thread) when a sealed segment
    is ready to convert."""

    def __init__(
        self,
        folder: Path,
        *,
        rotate_rows: int,
        rotate_seconds: float,
        on_ready: Callable[[], None],
        fsync: bool = True,
    ) -> None:
        _flock_module()  # refuse at once where segments cannot be locked
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rotate_rows = rotate_rows
        self._rotate_seconds = rotate_seconds
        self._on_ready = on_ready
        self._fsync = fsync
        self._cond = threading.Condition()
        self._queue: list[tuple[str, Any, Done | None]] = []
        self._rotate_now = False
        self._stopping = False
        self._current: Segment | None = None
        self._sealed: list[Segment] = []  # oldest first; owned by the journal's thread
        self._ready: list[Segment] = []
        self._owners: dict[str, Segment] = {}  # request id -> segment awaiting its shadow
        self._thread = threading.Thread(target=self._run, name="loopline-journal", daemon=True)
        self._thread.start()

    def commit(self, batch: PredictionBatch, done: Done, *, shadow_pending: bool = False) -> None:
        """Queue `batch` for the next group commit; `done(None)` once it is on disk."""
        kind = "pending" if shadow_pending else "batch"
        with self._cond:
            if self._stopping:
                raise InvalidInput("the prediction log is closed")
            self._queue.append((kind, batch, done))
            self._cond.notify()

    def commit_shadow(self, request_id: str, answer: dict[str, Any]) -> None:
        """Queue the shadow's answer for a request committed with `shadow_pending`."""
        with self._cond:
            self._queue.append(("shadow", (request_id, answer), None))
            self._cond.notify()

    def rotate(self) -> None:
        """Seal the current segment at the next turn (the log is being flushed)."""
        with self._cond:
            self._rotate_now = True
            self._cond.notify()

    def take_ready(self) -> list[Segment]:
        """Sealed segments whose records are complete, to convert (oldest first)."""
        with self._cond:
            ready, self._ready = self._ready, []
        return ready

    def idle(self) -> bool:
        """Nothing queued, no segment open or waiting: every commit is in a ready segment."""
        with self._cond:
            return not self._queue and self._current is None and not self._sealed

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, seal every segment (shadows still out are given up),
        and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    # -- the journal's thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._rotate_now:
                    self._cond.wait(self._wait_time())
                    if self._due():
                        break
                items, self._queue = self._queue, []
                stopping, rotate = self._stopping, self._rotate_now
                self._rotate_now = False
            try:
                if items:
                    self._write(items)
                if rotate or stopping or self._due():
                    self._seal()
                self._release(give_up=stopping)
            except Exception:  # never leave a request waiting: _write reports its own
                log.exception("the prediction log's journal failed")
            if stopping:
                with self._cond:
                    if not self._queue:
                        return

    def _due(self) -> bool:
        now = time.monotonic()
        current = self._current
        if current is not None and (
            current.rows >= self._rotate_rows or now - current.opened_at >= self._rotate_seconds
        ):
            return True
        return any(now - s.sealed_at >= SHADOW_WAIT_S for s in self._sealed if s.sealed_at)

    def _wait_time(self) -> float | None:
        now = time.monotonic()
        waits = [s.sealed_at + SHADOW_WAIT_S - now for s in self._sealed if s.sealed_at]
        if self._current is not None:
            waits.append(self._current.opened_at + self._rotate_seconds - now)
        return max(0.0, min(waits)) if waits else None

    def _write(self, items: list[tuple[str, Any, Done | None]]) -> None:
        """One frame per segment touched (one fdatasync each with "fsync"), then the
        callbacks."""
        frames: dict[Segment, list[tuple[bytes, bool]]] = {}
        outcome: list[tuple[Segment | None, str, Any, Done | None]] = []
        for kind, item, done in items:
            if kind == "shadow":
                segment = self._owners.get(item[0])
                if segment is None:
                    log.warning("the shadow's answer to %s came too late to be logged", item[0])
                    continue
                body = {"k": "s", "id": item[0], **item[1]}
            else:
                if self._current is None:
                    try:
                        self._current = self._open()
                    except OSError as exc:  # no segment, no commit: answer 503, not wait
                        log.error("the prediction log's journal cannot open a segment: %s", exc)
                        if done is not None:
                            done(exc)
                        continue
                segment = self._current
                body = encode_batch(item, shadow_pending=kind == "pending")
            try:
                frames.setdefault(segment, []).append(encode_entry(body))
            except Exception as exc:  # nothing JSON can hold: this request alone fails
                log.exception("a prediction record cannot be journaled")
                if done is not None:
                    done(exc)
                continue
            outcome.append((segment, kind, item, done))
        error: BaseException | None = None
        try:
            for segment, entries in frames.items():
                append_frame(segment.fd, entries)
                if self._fsync:
                    _sync(segment.fd)
        except OSError as exc:
            error = exc
            log.error("the prediction log's journal could not be written: %s", exc)
        for segment, kind, item, done in outcome:
            if error is None and segment is not None:
                self._committed(segment, kind, item)
            if done is not None:
                try:
                    done(error)
                except Exception:
                    log.exception("a journal callback failed")

    def _committed(self, segment: Segment, kind: str, item: Any) -> None:
        if kind == "shadow":  # the request is complete
            self._owners.pop(item[0], None)
            segment.waiting.discard(item[0])
            return
        segment.rows += len(item.predictions)
        if kind == "pending":
            self._owners[item.request_ids[0]] = segment
            segment.waiting.add(item.request_ids[0])

    def _open(self) -> Segment:
        import fcntl

        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.wal"
        path = self.folder / name
        # Created and locked under a name `claim_orphans` does not look at, then renamed:
        # a segment appears as `*.wal` only once it is locked, so no claimer (another
        # process's, or this log's own thread) can take a live segment for an orphan.
        opening = self.folder / f".{name}.opening"
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(opening, path)
        except BaseException:
            os.close(fd)
            opening.unlink(missing_ok=True)
            raise
        sync_folder(self.folder)
        return Segment(path, fd)

    def _seal(self) -> None:
        if self._current is not None:
            self._current.sealed_at = time.monotonic()
            with self._cond:  # `idle` reads both
                self._sealed.append(self._current)
                self._current = None

    def _release(self, *, give_up: bool) -> None:
        """Move sealed segments whose shadows are in (or too late) to `ready`."""
        now = time.monotonic()
        done = [
            s
            for s in self._sealed
            if not s.waiting or give_up or (s.sealed_at and now - s.sealed_at >= SHADOW_WAIT_S)
        ]
        if not done:
            return
        with self._cond:  # `idle` and `take_ready` read both
            for segment in done:
                self._sealed.remove(segment)
                for request_id in segment.waiting:
                    self._owners.pop(request_id, None)
            self._ready.extend(done)
        self._on_ready()


def _sync(fd: int) -> None:
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)  # the data and the file's size, not its times
    else:  # macOS
        os.fsync(fd)


# -- segments left by processes that died -------------------------------------------------


@dataclass(eq=False)
class Claimed:
    """A dead process's segment, locked by this one until `discard`."""

    path: Path
    fd: int

    @property
    def name(self) -> str:
        return self.path.stem

    def discard(self) -> None:
        _delete_locked(self.path, self.fd)

    def release(self) -> None:
        os.close(self.fd)


def _delete_locked(path: Path, fd: int) -> None:
    """Delete a segment while still holding its lock, then let go: no claimer can lock
    the file between its last use and its removal."""
    path.unlink(missing_ok=True)
    sync_folder(path.parent)
    os.close(fd)


def claim_orphans(folder: Path) -> list[Claimed]:
    """The segments in `folder` that no live process holds, locked for this one."""
    try:
        fcntl = _flock_module()
    except InvalidInput:
        return []
    found = []
    for path in sorted(folder.glob("*.wal")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:  # converted and replaced meanwhile
                raise FileNotFoundError(path)
        except OSError:  # held by a live process, or gone
            os.close(fd)
            continue
        found.append(Claimed(path, fd))
    return found


def _flock_module() -> Any:
    try:
        import fcntl
    except ImportError:
        raise InvalidInput(
            "durability 'sync' needs file locks (fcntl), which this platform lacks",
            hint="use durability 'fast'",
        ) from None
    return fcntl
