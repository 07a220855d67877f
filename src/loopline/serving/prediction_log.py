"""The prediction log: every answered request kept as Parquet, off the response path.

`PredictionLog` is a sink (see _sink.py): the server's sink thread hands it the answered
requests in batches (`write_many`; `log(record)` takes one), which only appends them to
an in-memory buffer. The
buffer is flushed when it holds `flush_rows` predicted rows (by the calling thread) or
`flush_seconds` after its first record (by the log's own thread, so a quiet server
flushes too). A flush groups the records by deployment and UTC hour and writes one
Parquet file per group into the local spool,

    <project>/.loopline/prediction-log/spool/<deployment>/<YYYYmmddTHH>Z-<id>.parquet

(written to a hidden `.part` file, then renamed: a spool file is always complete). The
log's thread then delivers spooled files: stores each in the artifact store, indexes it
in the metadata store (`prediction_log_files`), and deletes it. When a store is
unavailable the files stay in the spool and delivery is retried with a backoff of 1 s
doubling to 60 s; a new PredictionLog delivers whatever an earlier process left behind.
Indexing is idempotent (by content hash), so a file delivered twice, or by two worker
processes sharing the spool, is indexed once. A spool file that cannot be read is moved
to `prediction-log/rejected/` rather than blocking the others.

Durability. `close()` spools the buffer and tries one delivery; whatever cannot be
delivered stays in the spool for the next process, so a clean shutdown loses nothing.
A SIGKILL (or an OOM kill) loses what is only in memory: the buffer (at most
`flush_rows` rows, or `flush_seconds` of traffic) and the records the server's sink
queue still held (the last half second's; at most 10,000 requests). Spooled files
survive it; a file killed mid-write is only a `.part`, which a later PredictionLog
removes once it is an hour old. Nothing is fsynced, so a power cut can also lose spool
files written in the last seconds.

Schema: one row per predicted row,

    request_id string, row int32 (index in the request), time timestamp[us, UTC],
    deployment, model_version, runtime_version, endpoint string, latency_ms float64,
    prediction (the model's type as pyarrow converts its numpy array),
    probabilities list<float64> (null without), shadow_version string,
    shadow_prediction (as prediction), shadow_probabilities list<float64>,
    shadow_error string, inputs struct<one field per input column>

Inputs keep the model's column names inside the `inputs` struct, so they never collide
with the columns above; DuckDB's `read_parquet(..., union_by_name=true)` merges the
structs of files whose columns differ (a field missing from a file reads as null).
Numeric inputs of an all-numeric signature are logged as float64, as the model received
them; other numbers as float64, strings as strings, booleans as booleans, nulls as null.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, InvalidInput, LooplineError, NotFound
from loopline.serving._log_parquet import (
    checked_rows,
    empty_predictions,
    remove_stale_parts,
    spool_file_info,
    utc,
    utc_hour,
    write_spool_file,
)
from loopline.serving._sink import PredictionBatch
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores
    from loopline.serving._sink import PredictionRecord

log = logging.getLogger(__name__)

# Fewer, larger flushes: each flush's pyarrow calls hand the GIL back and forth with the
# event loop; at 1 s the log cost ~15 % of a small model's requests/s, at 5 s ~10 %.
FLUSH_ROWS = 20_000
FLUSH_SECONDS = 5.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
MAX_FEEDBACK_ITEMS = 10_000
MAX_LABEL_CHARS = 1000
MAX_ROW = 2**31 - 1
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SINCE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PredictionLog:
    """A sink that logs answered requests as Parquet files in the project's stores.

    `log(record)` buffers; see the module docstring for when the buffer is written,
    where, and what survives a crash. Call `close()` at shutdown.
    """

    def __init__(
        self,
        stores: Stores | None = None,
        *,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        if not isinstance(flush_rows, int) or flush_rows < 1:
            raise InvalidInput(f"flush_rows must be a positive integer, got {flush_rows!r}")
        if not isinstance(flush_seconds, int | float) or not flush_seconds > 0:
            raise InvalidInput(f"flush_seconds must be positive, got {flush_seconds!r}")
        if stores is None:
            from loopline.project import stores as current

            stores = current()
        self._stores = stores
        self._flush_rows = flush_rows
        self._flush_seconds = float(flush_seconds)
        folder = stores.settings.state_dir / "prediction-log"
        self.spool = folder / "spool"
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
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_S

        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="loopline-prediction-log", daemon=True
        )
        self._thread.start()

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

    @property
    def buffered_rows(self) -> int:
        """Predicted rows waiting in memory (not yet in the spool)."""
        with self._lock:
            return self._rows

    def pending(self) -> list[Path]:
        """Spool files not yet delivered (of this process and of any other)."""
        return sorted(self.spool.glob("*/*.parquet"))

    def flush(self) -> int:
        """Spool the buffer and deliver every spool file now; the number left undelivered."""
        with self._lock:
            batch = self._take()
        if batch:
            self._spool_records(batch)
        return self._deliver()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the timer, spool the buffer and try one delivery; files that cannot be
        delivered stay in the spool for the next process. Records that arrive later
        are spooled at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            batch = self._take()
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if batch:
            self._spool_records(batch)
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

    def _spool_records(self, records: list[PredictionBatch]) -> None:
        """Write batches to the spool, one Parquet file per (deployment, UTC hour of the
        batch's first request; a batch spans milliseconds)."""
        groups: dict[tuple[str, datetime], list[PredictionBatch]] = {}
        for record in records:
            key = (record.deployment, utc_hour(record.times[0]))
            groups.setdefault(key, []).append(record)
        for (deployment, hour), group in groups.items():
            try:
                write_spool_file(self.spool, deployment, hour, group)
            except Exception:
                log.exception(
                    "could not write %d prediction records of '%s' to the spool %s; they are lost",
                    len(group),
                    deployment,
                    self.spool,
                )
        self._pending = True

    # -- delivery -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._timeout())
            self._wake.clear()
            if self._stopping:
                return
            try:
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
        if self._pending:
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
        except FileNotFoundError:
            return  # another process delivered it meanwhile
        except (ValueError, KeyError, TypeError) as exc:  # not a log file (pyarrow: ValueError)
            self._reject(path, exc)
            return
        try:
            blob = self._stores.artifacts.put_file(path)
            self._stores.metadata.predictions.add_file(
                info["deployment"],
                hour=info["hour"],
                blob_hash=blob.hash,
                rows=info["rows"],
                first_time=info["first_time"],
                last_time=info["last_time"],
                size_bytes=blob.size,
            )
        except NotFound:
            return  # the file vanished: another process delivered it
        except InvalidInput as exc:
            self._reject(path, exc)
            return
        path.unlink(missing_ok=True)
        log.debug("delivered %s (%d rows) as blob %s", path.name, info["rows"], blob.hash)

    def _reject(self, path: Path, exc: Exception) -> None:
        target = self._rejected / path.parent.name / path.name
        log.error("prediction log file %s is unreadable (%s); moved to %s", path, exc, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


# -- reading ------------------------------------------------------------------------------


def prediction_log_files(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> list[Path]:
    """Local copies of the delivered log files of `deployment` that overlap [since, until).

    Files are fetched (verified) into `.loopline/cache/prediction-log/` and reused from
    there while their content still matches its hash. For queries of one's own:
    `duckdb.read_parquet([...], union_by_name=true)`.
    """
    check_deployment_name(deployment)
    since, until = _window(since, until)
    opened = _stores(stores)
    files = opened.metadata.predictions.files(deployment, since, until)
    cache = opened.settings.state_dir / "cache" / "prediction-log"
    paths = []
    for entry in files:
        path = cache / f"{entry.blob_hash}.parquet"
        if not _cached(path, entry.blob_hash):
            opened.artifacts.get_file(entry.blob_hash, path)
        paths.append(path)
    return paths


def read_predictions(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> pa.Table:
    """The logged rows of `deployment` with `since <= time < until`, ordered by time.

    Only delivered files are read: rows still in a server's memory or spool (at most a
    few seconds' worth, unless a store is down) are not included. A deployment with no
    logged rows, known or not, gives an empty table with the base columns. Naive
    datetimes are taken as UTC.
    """
    import duckdb

    since, until = _window(since, until)
    paths = prediction_log_files(deployment, since=since, until=until, stores=stores)
    if not paths:
        return empty_predictions()
    where: list[str] = []
    params: dict[str, Any] = {"files": [str(p) for p in paths]}
    if since is not None:
        where.append("time >= $since")
        params["since"] = since
    if until is not None:
        where.append("time < $until")
        params["until"] = until
    query = (
        "SELECT * FROM read_parquet($files, union_by_name = true)"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + ' ORDER BY time, request_id, "row"'
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(query, params=params)
        table = (
            relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        )
    return table.replace_schema_metadata(None)


def _cached(path: Path, digest: str) -> bool:
    import blake3

    try:
        data = path.read_bytes()
    except OSError:
        return False
    return bool(blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest() == digest)


# -- feedback -----------------------------------------------------------------------------


def record_feedback(
    deployment: str,
    items: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    stores: Stores | None = None,
) -> int:
    """Record ground truth for logged requests, all in one transaction; the count stored.

    Each item is {"request_id": str, "label": JSON scalar, "row": int >= 0 (default 0)}:
    request ids are 1-64 letters, digits, '_' or '-'; a label is a finite number, a
    boolean or a string of up to 1000 characters. One item may be given without a list.

    Raises:
        InvalidInput: no items, more than 10,000, or an item that is not an object.
        InvalidField: a missing, unknown or malformed field (names the field and the
            index of the item as `row`); nothing is stored.
    """
    check_deployment_name(deployment)
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list | tuple):
        raise InvalidInput(f"feedback must be an object or a list of objects, got {_kind(items)}")
    if not items:
        raise InvalidInput("no feedback given; send at least one {request_id, label} item")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise InvalidInput(
            f"{len(items)} feedback items in one call; at most {MAX_FEEDBACK_ITEMS} are allowed",
            hint="send them in several batches",
        )
    checked = [_feedback_item(item, index) for index, item in enumerate(items)]
    return _stores(stores).metadata.predictions.add_feedback(deployment, checked)


def read_feedback(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> pa.Table:
    """Labels of `deployment` recorded in [since, until), oldest first; of several labels
    for one (request_id, row) in the window, the newest.

    Columns: request_id string, row int32, label, time timestamp[us, UTC]. `label` is
    typed: bool, int64 or float64 (numbers: int64 when all are integers) or string, when
    every label in the result has that type (string when there are none); when types
    are mixed, every label is text (strings as they are, other values as their JSON).
    """
    import pyarrow as pa

    since, until = _window(since, until)
    found = _stores(stores).metadata.predictions.feedback(deployment, since, until)
    labels = [json.loads(f.label_json) for f in found]
    return pa.table(
        {
            "request_id": pa.array([f.request_id for f in found], pa.string()),
            "row": pa.array([f.row for f in found], pa.int32()),
            "label": _labels(labels),
            "time": pa.array([f.time for f in found], pa.timestamp("us", tz="UTC")),
        }
    )


def _feedback_item(item: Any, index: int) -> tuple[str, int, str]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"feedback item {index} must be an object, got {_kind(item)}")
    for key in item:
        if key not in ("request_id", "label", "row"):
            raise InvalidField(
                f"feedback item {index} has an unknown field {key!r}",
                field=str(key),
                row=index,
                hint="an item holds request_id, label and optionally row",
            )
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        what = "has no 'request_id'" if request_id is None else f"has request_id {request_id!r}"
        raise InvalidField(
            f"feedback item {index} {what}",
            field="request_id",
            row=index,
            hint="a request id is 1-64 letters, digits, '_' or '-' (the X-Request-Id answer)",
        )
    label = item.get("label")
    problem = _label_problem(label)
    if problem is not None:
        raise InvalidField(f"feedback item {index}: label {problem}", field="label", row=index)
    row = item.get("row", 0)
    if type(row) is not int or not 0 <= row <= MAX_ROW:
        raise InvalidField(
            f"feedback item {index}: row must be an integer >= 0, got {row!r}",
            field="row",
            row=index,
        )
    return request_id, row, json.dumps(label, ensure_ascii=False)


def _label_problem(label: Any) -> str | None:
    if label is None:
        return "is missing or null"
    if isinstance(label, bool | int):
        return None
    if isinstance(label, float):
        return None if math.isfinite(label) else f"must be finite, got {label!r}"
    if isinstance(label, str):
        if len(label) > MAX_LABEL_CHARS:
            return f"is {len(label)} characters long; at most {MAX_LABEL_CHARS} are allowed"
        return None
    return f"must be a number, a string or a boolean, got {_kind(label)}"


def _labels(labels: list[Any]) -> pa.Array:
    import pyarrow as pa

    kinds = {bool if type(v) is bool else float if type(v) in (int, float) else str for v in labels}
    if len(kinds) <= 1:
        try:
            return pa.array(labels) if labels else pa.array([], pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # an int beyond 64 bits
            pass
    return pa.array([v if isinstance(v, str) else json.dumps(v) for v in labels], pa.string())


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", type(None): "null", str: "a string"}
    return names.get(type(value), type(value).__name__)


# -- time windows -------------------------------------------------------------------------


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The moment `text` names: a duration back from `now` ("90s", "30m", "1h", "2d",
    "1w") or an ISO 8601 timestamp (naive means UTC). Raises InvalidInput otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(
            f"not a time: {text!r}", hint="use e.g. 30m, 1h, 2d or 2026-01-31T12:00Z"
        )
    match = _SINCE.fullmatch(text)
    if match is not None:
        now = utc(now) if now is not None else datetime.now(UTC)
        amount, unit = float(match.group(1)), match.group(2).lower()
        try:
            return now - timedelta(seconds=amount * _UNITS[unit])
        except OverflowError:
            raise InvalidInput(f"{text!r} reaches back too far") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"not a duration or an ISO timestamp: {text!r}",
            hint="use e.g. 90s, 30m, 1h, 2d, 1w or 2026-01-31T12:00:00Z",
        ) from None
    return utc(moment)


def _window(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and not isinstance(value, datetime):
            raise InvalidInput(f"{name} must be a datetime, got {value!r}")
    since = None if since is None else utc(since)
    until = None if until is None else utc(until)
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            f"the window ends ({until.isoformat()}) before it starts ({since.isoformat()})"
        )
    return since, until


def _stores(stores: Stores | None) -> Stores:
    if stores is not None:
        return stores
    from loopline.project import stores as current

    return current()
