"""The prediction log: every answered request kept as Parquet, off the response path.

`PredictionLog` (this module) is a sink for the server (see serving/online/_sink.py) with
two durabilities, and the diagram below is how it works.

Fast (the default). The server's sink thread hands the log the answered requests in
batches (`write_many`; `log(record)` takes one), which only appends them to an
in-memory buffer. The buffer is flushed when it holds `flush_rows` predicted rows (by
the calling thread) or `flush_seconds` after its first record (by the log's own thread,
so a quiet server flushes too).

Sync. The server answers a request only once its record is on disk: `commit(batch,
done)` hands it to a journal (`prediction-log/journal/`, see _journal.py) whose thread
appends everything that arrived meanwhile in one write and one fdatasync (group commit)
and then lets the responses go. Every `flush_rows` rows or `flush_seconds` the journal
starts a new segment file, and the log's thread turns the finished one into spool files
(fsynced) and deletes it.

Both write the spool the same way: records grouped by deployment and UTC hour, one
Parquet file per group,

    <project>/.loopline/prediction-log/spool/<deployment>/<YYYYmmddTHH>Z-<id>.parquet

(written to a hidden `.part` file, then renamed: a spool file is always complete). A
request whose values cannot be encoded (an integer past 64 bits, a lone surrogate, ...)
never costs the others: it is written, with the reason, as a JSON line to
`prediction-log/rejected/<deployment>/` and the rest of its group to the spool (see
_writer.py; `read_rejected(deployment)` reads them back). The log's thread then delivers
spooled files: stores each in the artifact store, indexes it in the metadata store
(`prediction_log_files`, with a filter of its request ids for `loopline trace`: see
_request_filter.py, and the blob of its per-column sketches for the monitor: see
_sketch.py; a file whose sketching fails is delivered without), and deletes it. When a
store is unavailable the files stay in the spool and delivery is retried with a backoff
of 1 s doubling to 60 s; a new PredictionLog delivers whatever an earlier process left
behind, and converts the journal segments of processes that died. Indexing is idempotent
(by content hash), so a file delivered twice, or by two worker processes sharing the
spool, is indexed once. A spool file that cannot be read is moved to
`prediction-log/rejected/` rather than blocking the others.

Durability. `close()` spools the buffer (or the journal) and tries one delivery;
whatever cannot be delivered stays in the spool for the next process, so a clean
shutdown loses nothing. With "fast", a SIGKILL (or an OOM kill) loses what is only in
memory: the buffer (at most `flush_rows` rows, or `flush_seconds` of traffic) and the
records the server's sink queue still held (the last half second's; at most 10,000
requests); nothing is fsynced, so a power cut can also lose spool files written in the
last seconds. With "sync", no answered request is lost to a kill of the process: its
record was written to the journal file before its response left. With "fsync" the
journal is also fdatasync'ed first, so no answered request is lost to a power cut
either (as far as the disk honours fdatasync). A crash can at most log a request whose
response never left. Spool files survive
either; a file killed mid-write is only a `.part`, which a later PredictionLog removes
once it is an hour old. Converting a journal segment is deterministic (file names
derive from the segment's), so a conversion cut short by a crash and done again
rewrites the same files, which the index then holds once.

Schema: one row per predicted row,

    request_id string, row int32 (index in the request), time timestamp[us, UTC],
    deployment, model_version, runtime_version, endpoint string, latency_ms float64,
    prediction (the model's type as pyarrow converts its numpy array),
    probabilities list<float64> (null without), shadow_version string,
    shadow_prediction (as prediction), shadow_probabilities list<float64>,
    shadow_error string, dropped_fields list<string> (the request's fields that are not
    model inputs, dropped before predicting; null when none: files written before this
    column existed read as null too), inputs struct<one field per input column>

Inputs keep the model's column names inside the `inputs` struct, so they never collide
with the columns above; DuckDB's `read_parquet(..., union_by_name=true)` merges the
structs of files whose columns differ (a field missing from a file reads as null).
Numeric inputs of an all-numeric signature are logged as float64, as the model received
them; other numbers as float64, strings as strings, booleans as booleans, nulls as null;
a column whose values are arrays, objects or of mixed types, as text (their JSON).

How, in this module:

    fast: write_many -> in-memory buffer -> (flush) spool_group -> spool/*.parquet
    sync: commit -> Journal (group-committed, fdatasync) -> done -> the response is sent
          journal segment sealed -> (log thread) spool_group, fsynced -> segment deleted
    both: spool/*.parquet -> (log thread) artifact store + index -> spool file deleted
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError, NotFound
from loopline.predictions._journal import Claimed, Done, Journal, Segment, claim_orphans
from loopline.predictions._journal_frames import decode_batches, read_frames, shadow_answer
from loopline.predictions._parquet import (
    checked_rows,
    remove_stale_parts,
    spool_file_info,
    utc_hour,
)
from loopline.predictions._records import PredictionBatch
from loopline.predictions._request_filter import file_filter
from loopline.predictions._writer import spool_group

if TYPE_CHECKING:
    import numpy as np

    from loopline.predictions._records import PredictionRecord
    from loopline.project import Stores
    from loopline.store.predictions import LogSketch

log = logging.getLogger(__name__)

# Fewer, larger flushes: each flush's pyarrow calls hand the GIL back and forth with the
# event loop; at 1 s the log cost ~15 % of a small model's requests/s, at 5 s ~10 %.
FLUSH_ROWS = 20_000
FLUSH_SECONDS = 5.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
DURABILITY = ("fast", "sync", "fsync")
# sync cost 31-35 % of requests/s at 8 clients, fsync 46-47 % (README): both past 20 %
DEFAULT_DURABILITY = "fast"


def check_durability(durability: object) -> str:
    """'fast', 'sync' or 'fsync' (see the module docstring); InvalidInput otherwise."""
    if durability not in DURABILITY:
        raise InvalidInput(
            f"log durability must be 'fast', 'sync' or 'fsync', got {durability!r}",
            hint="fast: records are buffered for up to 5 s; sync: each answer is in the "
            "journal file before its response (survives a kill); fsync: also flushed to "
            "the disk (survives a power cut)",
        )
    return str(durability)


class PredictionLog:
    """A sink that logs answered requests as Parquet files in the project's stores.

    `durability="fast"`: `log(record)` and `write_many` buffer. `durability="sync"` (or
    "fsync"): the server calls `commit(batch, done)` and answers once `done(None)` is
    called, when the record is in the journal file (and, with "fsync", flushed to
    disk). See the module docstring for when records are written, where, and what
    survives a crash. Call `close()` at shutdown.
    """

    def __init__(
        self,
        stores: Stores | None = None,
        *,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
        durability: str = DEFAULT_DURABILITY,
    ) -> None:
        if not isinstance(flush_rows, int) or flush_rows < 1:
            raise InvalidInput(f"flush_rows must be a positive integer, got {flush_rows!r}")
        if not isinstance(flush_seconds, int | float) or not flush_seconds > 0:
            raise InvalidInput(f"flush_seconds must be positive, got {flush_seconds!r}")
        self.durability = check_durability(durability)
        if stores is None:
            from loopline.project import stores as current

            stores = current()
        self._stores = stores
        self._flush_rows = flush_rows
        self._flush_seconds = float(flush_seconds)
        folder = stores.settings.state_dir / "prediction-log"
        self.spool = folder / "spool"
        self.journal_folder = folder / "journal"
        self._rejected = folder / "rejected"
        self.spool.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(self.spool)

        self._lock = threading.Lock()  # guards the buffer
        self._records: list[PredictionBatch] = []
        self._rows = 0
        self._first_at: float | None = None  # monotonic time of the first buffered record
        self._closed = False

        self._deliver_lock = threading.Lock()  # one delivery at a time
        self._pending = True  # whatever an earlier process left: deliver it first
        self._orphans = True  # journal segments of processes that died: convert them first
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_S

        self._wake = threading.Event()
        self._stopping = False
        self._failed: list[Segment] = []  # segments whose conversion failed: try again
        self._journal: Journal | None = None
        if self.durability != "fast":
            self._journal = Journal(
                self.journal_folder,
                rotate_rows=flush_rows,
                rotate_seconds=self._flush_seconds,
                on_ready=self._wake.set,
                fsync=self.durability == "fsync",
            )
        self._thread = threading.Thread(
            target=self._run, name="loopline-prediction-log", daemon=True
        )
        self._thread.start()

    @property
    def durable(self) -> bool:
        """Whether answers wait for `commit` (durability "sync" or "fsync")."""
        return self._journal is not None

    def __call__(self, record: PredictionRecord) -> None:
        """Buffer one answered request (cheap); flush when the buffer is full or due."""
        self.write_many([record])

    def write_many(self, items: Sequence[PredictionRecord | PredictionBatch]) -> None:
        """Buffer answered requests in one step (what the server's sink thread calls):
        records, or batches of the requests one predict call answered."""
        batches = [i if isinstance(i, PredictionBatch) else PredictionBatch.of(i) for i in items]
        kept = [batch for batch in batches if checked_rows(batch) is not None]
        if not kept:
            return
        if self._journal is not None and not self._closed:
            self._commit_and_wait(kept)
            return
        rows = sum(len(batch.predictions) for batch in kept)
        batch: list[PredictionBatch] = []
        first = False
        with self._lock:
            if self._closed:
                batch = kept
            else:
                self._records.extend(kept)
                self._rows += rows
                now = time.monotonic()
                first = self._first_at is None
                if first:
                    self._first_at = now
                assert self._first_at is not None
                if self._rows >= self._flush_rows or now - self._first_at >= self._flush_seconds:
                    batch = self._take()
        if batch:
            self._spool_records(batch)
            self._wake.set()
        elif first:
            self._wake.set()  # the timer learns when this buffer falls due

    def _commit_and_wait(self, batches: list[PredictionBatch]) -> None:
        """Durability "sync" for a caller of `log`/`write_many`: back once on disk."""
        assert self._journal is not None
        left = threading.Semaphore(0)
        errors: list[BaseException] = []

        def done(error: BaseException | None) -> None:
            if error is not None:
                errors.append(error)
            left.release()

        for batch in batches:
            self._journal.commit(batch, done)
        for _ in batches:
            left.acquire()
        if errors:
            raise errors[0]

    def commit(self, batch: PredictionBatch, done: Done, *, shadow_pending: bool = False) -> None:
        """Log `batch` and call `done(None)` once it is safe (with durability "sync": on
        disk; "fast": buffered, at once), or `done(error)`; called from another thread.

        `shadow_pending`: the request's shadow has not answered yet; `commit_shadow`
        brings its answer.
        """
        if checked_rows(batch) is None:
            done(InvalidInput("the prediction record's arrays disagree on its rows"))
        elif self._journal is None:
            self.write_many([batch])
            done(None)
        elif self._closed:  # the journal is gone: straight to the spool, synced
            try:
                self._spool_records([batch], stem=uuid.uuid4().hex, sync=True)
            except Exception as exc:
                done(exc)
            else:
                done(None)
        else:
            self._journal.commit(batch, done, shadow_pending=shadow_pending)

    def commit_shadow(
        self,
        request_id: str,
        *,
        predictions: np.ndarray[Any, Any] | None = None,
        probabilities: np.ndarray[Any, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """The answer of the shadow of a request committed with `shadow_pending`."""
        if self._journal is not None:
            self._journal.commit_shadow(
                request_id, shadow_answer(predictions, probabilities, error)
            )

    @property
    def buffered_rows(self) -> int:
        """Predicted rows waiting in memory (not yet in the spool; always 0 with "sync")."""
        with self._lock:
            return self._rows

    def pending(self) -> list[Path]:
        """Spool files not yet delivered (of this process and of any other)."""
        return sorted(self.spool.glob("*/*.parquet"))

    def flush(self) -> int:
        """Spool the buffer (or the journal) and deliver every spool file now; the number
        left undelivered."""
        with self._lock:
            batch = self._take()
        if batch:
            self._spool_records(batch)
        if self._journal is not None:
            self._journal.rotate()
            deadline = time.monotonic() + 10.0
            while not self._journal.idle() and time.monotonic() < deadline:
                time.sleep(0.005)
            self._convert(self._journal.take_ready())
        return self._deliver()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the timer, spool the buffer (or the journal) and try one delivery; files
        that cannot be delivered stay in the spool for the next process. Records that
        arrive later are spooled at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            batch = self._take()
        if self._journal is not None:
            self._journal.close(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if batch:
            self._spool_records(batch)
        if self._journal is not None:
            self._convert(self._journal.take_ready())
        if self._orphans:  # closed before the thread came to them
            self._orphans = False
            self._convert(claim_orphans(self.journal_folder))
        self._convert(self._take_failed())
        left = self._deliver(timeout)
        if left:
            log.warning(
                "%d prediction log files could not be delivered; they stay in %s and the "
                "next prediction log of this project delivers them",
                left,
                self.spool,
            )

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- buffering and spooling -------------------------------------------------------

    def _take(self) -> list[PredictionBatch]:
        """Empty the buffer (caller holds the lock)."""
        batch, self._records = self._records, []
        self._rows, self._first_at = 0, None
        return batch

    def _spool_records(
        self, records: list[PredictionBatch], *, stem: str | None = None, sync: bool = False
    ) -> None:
        """Write batches to the spool, one Parquet file per (deployment, UTC hour of the
        batch's first request; a batch spans milliseconds); requests that cannot be
        encoded go to rejected/ (see _writer). With a `stem` (a journal segment's
        name), the files are named after it and an OSError is raised, for the caller to
        keep the segment and try again."""
        groups: dict[tuple[str, datetime], list[PredictionBatch]] = {}
        for record in records:
            key = (record.deployment, utc_hour(record.times[0]))
            groups.setdefault(key, []).append(record)
        for n, ((deployment, hour), group) in enumerate(groups.items()):
            try:
                spool_group(
                    self.spool,
                    self._rejected,
                    deployment,
                    hour,
                    group,
                    stem=None if stem is None else f"{stem}-{n}",
                    sync=sync,
                )
            except Exception:
                if stem is not None:
                    raise
                log.exception(
                    "could not write %d prediction records of '%s' to the spool %s; they are lost",
                    len(group),
                    deployment,
                    self.spool,
                )
        self._pending = True

    def _convert(self, segments: Sequence[Segment | Claimed]) -> None:
        """Journal segments into spool files (fsynced: the segment is deleted next)."""
        for segment in segments:
            try:
                batches = decode_batches(read_frames(segment.path))
                self._spool_records(batches, stem=segment.name, sync=True)
            except Exception:
                log.exception(
                    "journal %s could not be written to the spool; it is kept for the next "
                    "prediction log of this project",
                    segment.path,
                )
                if isinstance(segment, Claimed):
                    segment.release()  # the next prediction log tries again
                else:
                    self._failed.append(segment)
                    self._retry_at = time.monotonic() + self._backoff
                    self._pending = True
                continue
            segment.discard()

    def _take_failed(self) -> list[Segment]:
        failed, self._failed = self._failed, []
        return failed

    # -- delivery -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._timeout())
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self._orphans:
                    self._orphans = False
                    self._convert(claim_orphans(self.journal_folder))
                if self._journal is not None:
                    self._convert(self._journal.take_ready())
                if self._failed and time.monotonic() >= self._retry_at:
                    self._convert(self._take_failed())
                with self._lock:
                    due = self._first_at is not None and (
                        time.monotonic() - self._first_at >= self._flush_seconds
                    )
                    batch = self._take() if due else []
                if batch:
                    self._spool_records(batch)
                if self._pending and time.monotonic() >= self._retry_at:
                    self._deliver()
            except Exception:
                log.exception("the prediction log's flush failed; it will try again")

    def _timeout(self) -> float | None:
        now = time.monotonic()
        waits = []
        with self._lock:
            if self._first_at is not None:
                waits.append(self._first_at + self._flush_seconds - now)
        if self._pending or self._orphans:
            waits.append(self._retry_at - now)
        return max(0.0, min(waits)) if waits else None

    def _deliver(self, timeout: float = -1) -> int:
        """Deliver every spool file; the number left (a store failed: retry later)."""
        if not self._deliver_lock.acquire(timeout=timeout):
            return len(self.pending())
        try:
            self._pending = False  # a file spooled from now on sets it again
            files = self.pending()
            for done, path in enumerate(files):
                try:
                    self._deliver_file(path)
                except (LooplineError, OSError) as exc:
                    self._pending = True
                    self._retry_at = time.monotonic() + self._backoff
                    log.warning(
                        "prediction log: %d files wait in %s, retrying in %.0f s: %s",
                        len(files) - done,
                        self.spool,
                        self._backoff,
                        exc,
                    )
                    self._backoff = min(self._backoff * 2, RETRY_MAX_S)
                    return len(files) - done
            self._backoff = RETRY_MIN_S
            return 0
        finally:
            self._deliver_lock.release()

    def _deliver_file(self, path: Path) -> None:
        try:
            info = spool_file_info(path)
            request_filter = file_filter(path)
        except FileNotFoundError:
            return  # another process delivered it meanwhile
        except (ValueError, KeyError, TypeError) as exc:  # not a log file (pyarrow: ValueError)
            self._reject(path, exc)
            return
        try:
            blob = self._stores.artifacts.put_file(path)
            sketch = self._sketch(path)
            self._stores.metadata.predictions.add_file(
                info["deployment"],
                hour=info["hour"],
                blob_hash=blob.hash,
                rows=info["rows"],
                first_time=info["first_time"],
                last_time=info["last_time"],
                size_bytes=blob.size,
                request_filter=request_filter,
                sketch=sketch,
            )
        except NotFound:
            return  # the file vanished: another process delivered it
        except InvalidInput as exc:
            self._reject(path, exc)
            return
        path.unlink(missing_ok=True)
        log.debug("delivered %s (%d rows) as blob %s", path.name, info["rows"], blob.hash)

    def _sketch(self, path: Path) -> LogSketch | None:
        """The stored sketches of a log file (see _sketch.py), or None when sketching
        fails: the file is delivered all the same, and the monitor reads it exactly."""
        from loopline.predictions._sketch import SKETCH_FORMAT, sketch_file
        from loopline.store.predictions import LogSketch

        try:
            data = sketch_file(path)
        except Exception as exc:  # a sketch is an optimisation: never lose a file to it
            log.warning("prediction log: no sketches for %s: %s", path.name, exc)
            return None
        return LogSketch(self._stores.artifacts.put_bytes(data).hash, SKETCH_FORMAT)

    def _reject(self, path: Path, exc: Exception) -> None:
        target = self._rejected / path.parent.name / path.name
        log.error("prediction log file %s is unreadable (%s); moved to %s", path, exc, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
