"""The prediction log's Parquet files: answered requests as columns, and the spool files.

`records_table` turns buffered PredictionBatches (the requests of one predict call; a
single request's PredictionRecord becomes a batch of one) into one arrow table, a row
per predicted row, vectorised over batches and requests (numpy, arrow `take`); the
schema is described in _spool's docstring. `encode_spool_file` encodes one group
(a deployment's records within one UTC hour) as Parquet bytes with its description in
the Parquet key-value metadata, which `spool_file_info` reads back for the index;
`write_atomically` puts bytes under their name in one step (see _writer, which
decides what to do with a group that cannot be encoded).

An input column holds the values clients sent, which JSON allows to be anything: a
column whose values are not all scalars of one kind (an array or an object, mixed
types) is logged as text (strings as they are, other values as their JSON), so that
every file of the log reads as one table (DuckDB merges a float column of one file with
a text column of another, but not with a list or a struct).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.predictions._records import PredictionBatch

log = logging.getLogger(__name__)

FILE_KEY = b"loopline.prediction_log"  # Parquet key-value metadata: what the file holds
STALE_PART_S = 3600.0
BASE_COLUMNS = (
    "request_id",
    "row",
    "time",
    "deployment",
    "model_version",
    "runtime_version",
    "endpoint",
    "latency_ms",
    "prediction",
    "probabilities",
    "shadow_version",
    "shadow_prediction",
    "shadow_probabilities",
    "shadow_error",
    "dropped_fields",
    "inputs",
)


def write_spool_file(
    spool: Path,
    deployment: str,
    hour: datetime,
    records: Sequence[PredictionBatch],
) -> Path:
    """Write one group's records as a Parquet file under `spool/<deployment>/`, atomically
    (raises whatever the encoding raises: see _writer for the writer that never does)."""
    check_deployment_name(deployment)
    data = encode_spool_file(deployment, hour, records)
    return write_atomically(
        spool / deployment, f"{hour:%Y%m%dT%H}Z-{uuid.uuid4().hex}.parquet", data
    )


def encode_spool_file(deployment: str, hour: datetime, records: Sequence[PredictionBatch]) -> bytes:
    """One group's records as the bytes of a log file (Parquet, described in its metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = records_table(records)
    times = table.column("time")
    first, last = _time_bounds(times)
    about = {
        "format": 1,
        "deployment": deployment,
        "hour": hour.isoformat(),
        "rows": table.num_rows,
        "first_time": first.isoformat(),
        "last_time": last.isoformat(),
    }
    table = table.replace_schema_metadata({FILE_KEY: json.dumps(about).encode()})
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="lz4")  # 5x faster to write than zstd here
    return bytes(out.getvalue())


def write_atomically(folder: Path, name: str, data: bytes, *, sync: bool = False) -> Path:
    """Write `data` as `folder/name` in one step: a hidden `.part` file renamed into place,
    so a reader (or a process that starts after a kill) never sees half a file. With
    `sync`, the file and the folder entry are on disk (fsync) before this returns."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.part"
    try:
        with open(temp, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, folder / name)
    finally:
        temp.unlink(missing_ok=True)
    if sync:
        sync_folder(folder)
    return folder / name


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that the names created or removed in it survive a power cut."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def spool_file_info(path: Path) -> dict[str, Any]:
    """What a log file holds (from its Parquet metadata): deployment, hour, rows, times."""
    import pyarrow.parquet as pq

    about = json.loads(pq.read_schema(path).metadata[FILE_KEY])
    return {
        "deployment": str(about["deployment"]),
        "hour": datetime.fromisoformat(about["hour"]),
        "rows": int(about["rows"]),
        "first_time": datetime.fromisoformat(about["first_time"]),
        "last_time": datetime.fromisoformat(about["last_time"]),
    }


def records_table(batches: Sequence[PredictionBatch]) -> pa.Table:
    """The log rows of some batches (the module docstring of _spool has the
    schema; PredictionLog.write_many turns single records into batches of one)."""
    import numpy as np
    import pyarrow as pa

    # rows per batch, and per request (in request order over all batches)
    per_batch = np.fromiter((len(b.predictions) for b in batches), np.int64, len(batches))
    per_request = np.concatenate([b.row_counts for b in batches])
    total = int(per_batch.sum())
    by_batch = pa.array(np.repeat(np.arange(len(batches)), per_batch))
    by_request = pa.array(np.repeat(np.arange(len(per_request)), per_request))

    def of_batches(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(by_batch)

    def of_requests(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(by_request)

    starts = np.cumsum(per_request) - per_request
    prediction = _values([b.predictions for b in batches])
    columns: dict[str, pa.Array] = {
        "request_id": of_requests(_joined(b.request_ids for b in batches), pa.string()),
        "row": pa.array((np.arange(total) - np.repeat(starts, per_request)).astype(np.int32)),
        "time": of_requests(
            [utc(t) for b in batches for t in b.times], pa.timestamp("us", tz="UTC")
        ),
        "endpoint": of_requests(_joined(b.endpoints for b in batches), pa.string()),
        "latency_ms": pa.array(
            np.repeat(np.concatenate([b.latency_ms for b in batches]), per_request)
        ),
        "prediction": prediction,
        "probabilities": _lists([b.probabilities for b in batches], per_batch),
        "shadow_prediction": _optional(
            [b.shadow_predictions for b in batches], per_batch, prediction.type
        ),
        "shadow_probabilities": _lists([b.shadow_probabilities for b in batches], per_batch),
        "dropped_fields": of_requests(_dropped(batches), pa.list_(pa.string())),
        "inputs": _inputs(batches),
    }
    for name in ("deployment", "model_version", "runtime_version", "shadow_version"):
        columns[name] = of_batches([getattr(b, name) for b in batches], pa.string())
    columns["shadow_error"] = of_batches([b.shadow_error for b in batches], pa.string())
    return pa.table({name: columns[name] for name in BASE_COLUMNS})


def _dropped(batches: Sequence[PredictionBatch]) -> list[list[str] | None]:
    """Per request, the fields it sent that are not inputs (null when none)."""
    found: list[list[str] | None] = []
    for batch in batches:
        if batch.dropped_fields is None:
            found.extend([None] * len(batch.request_ids))
        else:
            found.extend(list(names) or None for names in batch.dropped_fields)
    return found


def _joined(lists: Iterable[list[str]]) -> list[str]:
    return list(chain.from_iterable(lists))


def _values(arrays: Sequence[np.ndarray[Any, Any]]) -> pa.Array:
    """One arrow array of the rows of several prediction arrays (2-D rows become lists)."""
    import numpy as np
    import pyarrow as pa

    parts = [np.asarray(a) for a in arrays]
    if all(part.ndim == 1 for part in parts):
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        try:
            return pa.array(joined)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            values = joined.tolist()
    else:
        values = [row.tolist() for part in parts for row in part]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types, e.g. two model versions
        log.warning("predictions of mixed types are logged as text")
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _optional(
    arrays: Sequence[np.ndarray[Any, Any] | None], counts: np.ndarray[Any, Any], kind: pa.DataType
) -> pa.Array:
    """Like _values, with null rows for the records that have no array."""
    import numpy as np
    import pyarrow as pa

    given = np.array([a is not None for a in arrays])
    if not given.any():
        return pa.nulls(int(counts.sum()), kind)
    values = _values([a for a in arrays if a is not None])
    rows = np.repeat(given, counts)
    positions = np.where(rows, np.cumsum(rows) - 1, 0)
    return values.take(pa.array(positions, mask=~rows))


def _lists(arrays: Sequence[np.ndarray[Any, Any] | None], counts: np.ndarray[Any, Any]) -> pa.Array:
    """A list<float64> per row: that row's class probabilities, null when there are none."""
    import numpy as np
    import pyarrow as pa

    kind = pa.list_(pa.float64())
    if all(a is None for a in arrays):
        return pa.nulls(int(counts.sum()), kind)
    widths_seen = {a.shape[1] if a is not None and a.ndim == 2 else -1 for a in arrays}
    if len(widths_seen) == 1 and -1 not in widths_seen:  # the common case: one matrix
        joined = np.concatenate(arrays).astype(np.float64, copy=False)  # type: ignore[arg-type]
        rows, width = joined.shape
        offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(joined.ravel()), type=kind)
    matrices = [
        None if a is None else np.asarray(a, np.float64).reshape(n, -1)
        for a, n in zip(arrays, counts.tolist(), strict=True)
    ]
    widths = np.array([0 if m is None else m.shape[1] for m in matrices], np.int64)
    lengths = np.repeat(widths, counts)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate([m.ravel() for m in matrices if m is not None])
    missing = np.repeat(np.array([m is None for m in matrices]), counts)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values), type=kind, mask=pa.array(missing)
    )


def _inputs(records: Sequence[PredictionBatch]) -> pa.Array:
    """The request rows as one struct array, a field per input column."""
    import numpy as np
    import pyarrow as pa

    names = records[0].block.names
    if all(r.block.names == names and r.block.matrix is not None for r in records):
        matrix = np.concatenate([r.block.matrix for r in records])
        fields = [pa.array(matrix[:, i], from_pandas=True) for i in range(len(names))]
        return pa.StructArray.from_arrays(fields, names=list(names))
    every = list(dict.fromkeys(chain.from_iterable(r.block.names for r in records)))
    pieces: dict[str, list[Any]] = {name: [] for name in every}
    for record in records:
        block = record.block
        given = dict(zip(block.names, range(len(block.names)), strict=True))
        columns = block.columns() if block.matrix is None else None
        for name in every:
            at = given.get(name)
            if at is None:
                pieces[name].append([None] * block.n_rows)
            elif columns is None:
                assert block.matrix is not None
                pieces[name].append(block.matrix[:, at])
            else:
                pieces[name].append(columns[at])
    return pa.StructArray.from_arrays([_column(pieces[n]) for n in every], names=every)


def _column(pieces: list[Any]) -> pa.Array:
    """One input column from per-record pieces (numpy arrays or lists of JSON values)."""
    import numpy as np
    import pyarrow as pa

    if all(isinstance(p, np.ndarray) for p in pieces):
        return pa.array(np.concatenate(pieces), from_pandas=True)
    values = list(
        chain.from_iterable(p.tolist() if isinstance(p, np.ndarray) else p for p in pieces)
    )
    if set(map(type, values)) & {list, dict, tuple}:  # not a scalar: its JSON text
        return _text(values)
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. two signatures disagree on a type
        return _text(values)
    return array.cast(pa.float64()) if pa.types.is_integer(array.type) else array


def _text(values: list[Any]) -> pa.Array:
    """Values as a string column: strings as they are, NaN as null (as in a number
    column), anything else as its JSON."""
    import pyarrow as pa

    def text(value: Any) -> str | None:
        if value is None or type(value) is str:
            return value
        if type(value) is float and value != value:
            return None
        return json.dumps(value, ensure_ascii=False)

    return pa.array([text(v) for v in values], pa.string())


def checked_rows(record: PredictionBatch) -> int | None:
    """The batch's row count, or None (logged) if its arrays disagree on it."""
    rows = len(record.predictions)
    lengths = [record.block.n_rows, int(record.row_counts.sum())]
    for array in (record.probabilities, record.shadow_predictions, record.shadow_probabilities):
        if array is not None:
            lengths.append(len(array))
    per_request = [len(record.times), len(record.endpoints), len(record.latency_ms)]
    if record.dropped_fields is not None:
        per_request.append(len(record.dropped_fields))
    if rows == 0 or any(n != rows for n in lengths) or {*per_request} != {len(record.row_counts)}:
        log.warning(
            "prediction record %s has rows of unequal lengths; not logged", record.request_ids
        )
        return None
    return rows


def _time_bounds(times: pa.ChunkedArray) -> tuple[datetime, datetime]:
    import pyarrow.compute as pc

    bounds = pc.min_max(times)
    return bounds["min"].as_py(), bounds["max"].as_py()


def remove_stale_parts(spool: Path) -> None:
    """Remove `.part` files that a killed writer left more than an hour ago."""
    cutoff = time.time() - STALE_PART_S
    for part in spool.glob("*/.*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:
            pass


def empty_predictions() -> pa.Table:
    """A table with no rows and the base columns (prediction and input types unknown:
    null)."""
    import pyarrow as pa

    kinds = {
        "row": pa.int32(),
        "time": pa.timestamp("us", tz="UTC"),
        "latency_ms": pa.float64(),
        "prediction": pa.null(),
        "probabilities": pa.list_(pa.float64()),
        "shadow_prediction": pa.null(),
        "shadow_probabilities": pa.list_(pa.float64()),
        "dropped_fields": pa.list_(pa.string()),
        "inputs": pa.null(),  # unknown columns (an empty struct cannot go to Parquet)
    }
    schema = pa.schema([(name, kinds.get(name, pa.string())) for name in BASE_COLUMNS])
    return schema.empty_table()


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is UTC:  # what the server records: nothing to convert
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (naive: taken as UTC)."""
    return utc(moment).replace(minute=0, second=0, microsecond=0)
