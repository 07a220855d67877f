"""A window of the prediction log, streamed: DuckDB reads the delivered Parquet files of
the window and hands back Arrow record batches of a bounded size, with every model input
as a column of its own (`inputs` is a struct in the files). Nothing holds the whole
window: the monitor feeds each batch to its accumulators and drops it. The next batch is
read (on one DuckDB thread, in a thread of ours) while the monitor works on this one; at
262,144 rows a batch, a 10M-row window x 20 inputs peaks at ~700 MB of RSS in all.

Feedback labels are joined by (request_id, row) in a second query that materialises only
the labelled rows (they are few next to the window, and the metrics need them whole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

BATCH_ROWS = 262_144
READ_THREADS = 1


@dataclass(frozen=True)
class WindowShape:
    """What the window's files hold: how many rows, which model versions, which inputs."""

    rows: int
    versions: dict[str, int]
    inputs: dict[str, str]  # input name -> kind (numeric, boolean, text, null, other)
    has_probabilities: bool
    prediction_type: str | None


def _connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _source(where: list[str]) -> str:
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"(SELECT * FROM read_parquet($files, union_by_name = true){clause})"


def _where(since: datetime | None, until: datetime | None) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if since is not None:
        where.append("time >= $since")
        params["since"] = since
    if until is not None:
        where.append("time < $until")
        params["until"] = until
    return where, params


def shape(paths: Sequence[Path], since: datetime | None, until: datetime | None) -> WindowShape:
    """Row count per model version and the columns of the window's files."""
    import pyarrow as pa

    if not paths:
        return WindowShape(0, {}, {}, False, None)
    where, params = _where(since, until)
    params["files"] = [str(p) for p in paths]
    with _connect() as con:
        source = _source(where)
        counts = con.execute(
            f"SELECT model_version, count(*) FROM {source} GROUP BY model_version", params
        ).fetchall()
        empty: pa.Table = con.sql(f"SELECT * FROM {source} LIMIT 0", params=params).to_arrow_table()
        schema = empty.schema
    inputs: dict[str, str] = {}
    if "inputs" in schema.names and pa.types.is_struct(schema.field("inputs").type):
        struct = schema.field("inputs").type
        inputs = {
            struct.field(i).name: kind_of(struct.field(i).type) for i in range(struct.num_fields)
        }
    versions = {str(v): int(n) for v, n in counts if v is not None}
    return WindowShape(
        rows=sum(versions.values()),
        versions=dict(sorted(versions.items())),
        inputs=inputs,
        has_probabilities="probabilities" in schema.names,
        prediction_type=kind_of(schema.field("prediction").type)
        if "prediction" in schema.names
        else None,
    )


def kind_of(arrow_type: pa.DataType) -> str:
    """numeric, boolean, text or other: how the monitor treats a column of this type."""
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    ):
        return "numeric"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_dictionary(arrow_type)
    ):
        return "text"
    if pa.types.is_null(arrow_type):
        return "null"
    return "other"


def batches(
    paths: Sequence[Path],
    since: datetime | None,
    until: datetime | None,
    *,
    inputs: Sequence[str],
    batch_rows: int = BATCH_ROWS,
    extra: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """The window's rows as record batches with columns model_version, prediction,
    probabilities (when logged), one column per input (`input:NAME`), and `extra` log
    columns; at most `batch_rows` rows each, in no particular order."""
    if not paths:
        return
    where, params = _where(since, until)
    params["files"] = [str(p) for p in paths]
    columns = ["model_version", "prediction", *extra]
    columns += [f'inputs."{_quoted(name)}" AS "input:{_quoted(name)}"' for name in inputs]
    probabilities = ", probabilities" if _has_column(paths, "probabilities") else ""
    query = f"SELECT {', '.join(columns)}{probabilities} FROM {_source(where)}"

    def read() -> Iterator[pa.RecordBatch]:
        # one DuckDB thread: it then fills whole batches in order (with more, it hands out
        # each file's row group apart, to be joined by a copy), and it keeps to the reader
        # thread's core while the caller's work takes the other
        with _connect(threads=READ_THREADS) as con:
            reader: pa.RecordBatchReader = con.sql(query, params=params).to_arrow_reader(batch_rows)
            yield from _coalesced(reader, batch_rows)

    yield from _read_ahead(read)


def _read_ahead(make: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """The batches of `make()`, read one batch ahead in a thread of their own: DuckDB
    reads and decodes the next batch (without the GIL) while the caller works on this one.
    An error in the reader is raised here; a caller that stops early stops the reader."""
    import queue
    import threading

    ahead: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in make():
                if not hand(batch):
                    return
            hand(_END)
        except BaseException as exc:  # handed to the caller, raised there
            hand(_Failed(exc))

    reader = threading.Thread(target=work, name="log-window-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join()


_END = object()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _coalesced(parts: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """`parts` joined into batches of about `rows` rows (at most `rows` plus one part).

    DuckDB hands out one batch per Parquet row group whatever size is asked (20,000 rows
    for a log file of the server's): fed as they come, every column's work paid its fixed
    costs 500 times over a 10M-row window instead of 10.
    """

    waiting: list[pa.RecordBatch] = []
    held = 0
    for part in parts:
        if part.num_rows >= rows and not waiting:
            yield part
            continue
        waiting.append(part)
        held += part.num_rows
        if held >= rows:
            yield _joined(waiting)
            waiting, held = [], 0
    if waiting:
        yield _joined(waiting)


def _joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0]
    table = pa.Table.from_batches(parts).combine_chunks()
    return table.to_batches()[0]


def labelled(
    paths: Sequence[Path],
    since: datetime | None,
    until: datetime | None,
    feedback: pa.Table,
    *,
    inputs: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> pa.Table:
    """The window's rows that have a feedback label: model_version, request_id, row,
    prediction, probabilities (when logged), the named inputs (`input:NAME`), the `extra`
    log columns, and `label`."""
    import pyarrow as pa

    if not paths or feedback.num_rows == 0:
        return pa.table({"model_version": pa.array([], pa.string())})
    where, params = _where(since, until)
    params["files"] = [str(p) for p in paths]
    probabilities = ", log.probabilities" if _has_column(paths, "probabilities") else ""
    named = "".join(f', log.inputs."{_quoted(name)}" AS "input:{_quoted(name)}"' for name in inputs)
    named += "".join(f', log."{_quoted(name)}"' for name in extra)
    query = (
        'SELECT log.model_version, log.request_id, log."row", log.time, log.prediction'
        f"{probabilities}{named}, fb.label FROM {_source(where)} AS log "
        'JOIN feedback AS fb ON log.request_id = fb.request_id AND log."row" = fb."row" '
        'ORDER BY log.time, log.request_id, log."row"'
    )
    with _connect() as con:
        con.register("feedback", feedback)
        table: pa.Table = con.sql(query, params=params).to_arrow_table()
    return table


def _has_column(paths: Sequence[Path], name: str) -> bool:
    import pyarrow.parquet as pq

    return any(name in pq.read_schema(path).names for path in paths)


def _quoted(name: str) -> str:
    return name.replace('"', '""')
