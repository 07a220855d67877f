"""The prediction log: every answered request kept as Parquet, off the response path.

`PredictionLog` (in _log_spool.py) is a sink (see _sink.py) with two durabilities.

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
_log_writer.py; `read_rejected(deployment)` reads them back). The log's thread then
delivers spooled files: stores each in the artifact store, indexes it in the metadata
store (`prediction_log_files`), and deletes it. When a store is unavailable the files
stay in the spool and delivery is retried with a backoff of 1 s doubling to 60 s; a new
PredictionLog delivers whatever an earlier process left behind, and converts the journal
segments of processes that died. Indexing is idempotent (by content hash), so a file
delivered twice, or by two worker processes sharing the spool, is indexed once. A spool
file that cannot be read is moved to `prediction-log/rejected/` rather than blocking the
others.

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
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, InvalidInput
from loopline.serving._log_parquet import empty_predictions, utc
from loopline.serving._log_spool import PredictionLog as PredictionLog
from loopline.serving._log_writer import read_rejected as read_rejected
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores

log = logging.getLogger(__name__)

MAX_FEEDBACK_ITEMS = 10_000
MAX_LABEL_CHARS = 1000
MAX_ROW = 2**31 - 1
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SINCE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
    since, until = _window(since, until)
    paths = prediction_log_files(deployment, since=since, until=until, stores=stores)
    return read_log_files(paths, since=since, until=until)


def read_log_files(
    paths: Sequence[Path], *, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """The rows of some log files with `since <= time < until` (aware UTC datetimes, or
    None), ordered by time, as one table (DuckDB merges files whose columns differ)."""
    import duckdb

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
    return _with_dropped_fields(table.replace_schema_metadata(None))


def _with_dropped_fields(table: pa.Table) -> pa.Table:
    """`table` with a `dropped_fields` column (null where files older than it are read)."""
    import pyarrow as pa

    if "dropped_fields" in table.column_names:
        return table
    column = pa.nulls(table.num_rows, pa.list_(pa.string()))
    at = table.column_names.index("inputs") if "inputs" in table.column_names else -1
    if at < 0:
        return table.append_column("dropped_fields", column)
    return table.add_column(at, "dropped_fields", column)


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
