"""Batch prediction: a registered model over a Parquet file, a CSV file or a dataset version.

`predict_batch("churn@champion", "data.parquet", "preds.parquet")` streams the input in
chunks of `chunk_size` rows, checks each chunk against the model's signature, predicts
with the fastest runtime the version allows (see `loopline.serving.runtime`), and
appends the chunk's predictions to the output (Parquet, CSV or JSON Lines, by its
extension: see `_output`), so memory stays constant whatever the input's size. The
output is written under a temporary name in the same folder and renamed into place only
once complete. The batch is a tracked run whose inputs are the model version and, for a
`NAME@VERSION` input, the dataset version.

`executor="ray"` keeps the reading and writing here and sends the chunks to a pool of Ray
actors to predict (see `_ray`); the output is the same file, row for row.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import Conflict, InvalidField, InvalidInput, NotFound
from loopline.predictions import Block
from loopline.serving._inputs import NUMBERS, InputSchema, from_columns
from loopline.serving.batch._output import (
    keep_columns,
    open_writer,
    output_format,
    require_kept,
    with_kept,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.packaging import ColumnSpec
    from loopline.serving.batch._output import TableWriter
    from loopline.serving.runtime import Prediction, ServedModel
    from loopline.store import DatasetVersion

EXPERIMENT = "batch-predict"
CSV_BLOCK_BYTES = 4 << 20  # bytes pyarrow's CSV reader parses at a time
SUFFIXES = (".parquet", ".csv")
EXECUTORS = ("local", "ray")
_ARROW_TYPES = {
    "double": "float64",
    "float": "float64",
    "long": "int64",
    "integer": "int64",
    "boolean": "bool",
    "string": "string",
    "datetime": "string",
}


@dataclass(frozen=True)
class BatchResult:
    """What a batch prediction wrote: `rows`, the `output` file, the `model_version` that
    answered (e.g. "churn/1"), the tracked `run_id` and the `seconds` spent predicting."""

    rows: int
    output: Path
    model_version: str
    run_id: str | None
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Throughput of the streaming part (reading, predicting, writing)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Source:
    """The tables to stream, in order, and the dataset version they come from, if any."""

    files: list[Path]
    dataset: DatasetVersion | None


def predict_batch(
    model: str,
    input: str | Path,
    output: str | Path,
    *,
    chunk_size: int = 50_000,
    prefer_onnx: bool = True,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    keep: Sequence[str] = (),
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
) -> BatchResult:
    """Predict with `model` ("churn", "churn/3", "churn@champion") on every row of `input`.

    `input` is a `.parquet` or `.csv` file, or a dataset reference `NAME@VERSION`. The
    output's extension chooses its format: `.parquet`, `.csv` or `.jsonl` (JSON Lines).
    It holds `row_id` (0-based position in the input), the input columns named in `keep`
    (e.g. `keep=["id"]`, to join predictions back to their rows), `prediction`, one
    `proba_<class>` column per class when the model gives probabilities, and
    `model_version`. `progress(n)` is called with the rows of each chunk done;
    `on_total(n)` with the number of rows when it is known up front (Parquet, datasets).

    `executor="ray"` (the `ray` extra) predicts the chunks on a Ray cluster: the one at
    `ray_address`, else at $RAY_ADDRESS, else a local Ray started for this batch and
    stopped after it (a Ray already initialized in this process is used as it is).

    The model loads as `loopline.models.load` loads it (the types recorded with it, plus
    `trusted`; a pickle only with `allow_pickle`), on either executor.

    Runs inside the active run, or in a new run of the "batch-predict" experiment.

    Raises InvalidInput for a bad chunk size or executor, an unsupported input or output
    file type, an output that is a directory, a column to keep the input lacks, or a
    chunk that breaks the signature (InvalidField, naming the row in the whole input),
    NotFound for an unknown model, dataset or input file, Conflict when `output` exists
    and `overwrite` is False, MissingExtra for `executor="ray"` without Ray installed.
    """
    from loopline.serving.runtime import load_served

    if type(chunk_size) is not int or chunk_size <= 0:
        raise InvalidInput(f"chunk_size must be a positive whole number, got {chunk_size!r}")
    _check_executor(executor, ray_address)
    target = Path(output)
    fmt = output_format(target)
    kept_names = keep_columns(keep)
    if target.exists() and not overwrite:
        raise Conflict(
            f"the output {target} already exists", hint="pass overwrite=True (--overwrite)"
        )
    source = _source(input)
    served = load_served(model, prefer_onnx=prefer_onnx, trusted=trusted, allow_pickle=allow_pickle)
    total = _row_total(source)
    if on_total is not None and total is not None:
        on_total(total)
    with _tracked_run(served, str(input), chunk_size, executor) as run_id:
        _record_lineage(served, source)
        kept: deque[pa.Table] = deque()
        chunks = _split(_chunks(source, served.schema, chunk_size, kept_names), served, kept)
        with _predictions(executor, served, chunks, total, chunk_size, ray_address) as tables:
            if kept_names:  # chunks come back in input order, on either executor
                tables = (with_kept(table, kept.popleft()) for table in tables)
            started = time.perf_counter()  # Ray start-up and model loading excluded
            rows = _write(tables, source, target, fmt, progress)
            seconds = time.perf_counter() - started
        _log_metrics(rows, seconds)
    return BatchResult(rows, target, served.version_ref, run_id, seconds)


def _check_executor(executor: str, ray_address: str | None) -> None:
    if executor not in EXECUTORS:
        raise InvalidInput(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if ray_address is not None and executor != "ray":
        raise InvalidInput(
            "a Ray address is only used with the ray executor", hint="add --executor ray"
        )
    if executor == "ray":
        from loopline.serving.batch._ray import require_ray

        require_ray()


@contextlib.contextmanager
def _predictions(
    executor: str,
    served: ServedModel,
    chunks: Iterable[tuple[int, pa.RecordBatch]],
    total: int | None,
    chunk_size: int,
    ray_address: str | None,
) -> Iterator[Iterator[pa.Table]]:
    """The output table of every chunk, in input order, predicted here or on Ray."""
    if executor == "local":
        yield (predict_chunk(served, batch, offset) for offset, batch in chunks)
        return
    from loopline.serving.batch._ray import ray_pool

    chunks = iter(chunks)
    first = next(chunks, None)  # an unreadable input fails here, before Ray starts
    if first is None:
        yield iter(())
        return
    most = None if total is None else max(1, -(-total // chunk_size))  # one actor a chunk
    with ray_pool(served, address=ray_address, max_actors=most) as pool:
        yield pool.predict(itertools.chain([first], chunks))


def _split(
    chunks: Iterable[tuple[int, pa.RecordBatch]], served: ServedModel, kept: deque[pa.Table]
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The model's columns of each chunk, to predict; the other columns it holds (those to
    keep) stay here, queued in `kept` in input order, and never travel to Ray."""
    import pyarrow as pa

    inputs = len(served.schema.names)
    for offset, batch in chunks:
        if batch.num_columns > inputs:  # by position: a kept model input is there twice
            extra = list(range(inputs, batch.num_columns))
            kept.append(pa.Table.from_batches([batch.select(extra)]))
            batch = batch.select(list(range(inputs)))
        yield offset, batch


# --- the input -------------------------------------------------------------------------


def _source(input: str | Path) -> _Source:
    """The files behind `input`: one file, or a dataset version's tabular files."""
    from loopline.data import resolve
    from loopline.data.checkout import materialize
    from loopline.data.profile import tabular_files

    path = Path(input)
    if isinstance(input, str) and "@" in input and not path.exists():
        version = resolve(input)
        files = tabular_files(materialize(version))
        if not files:
            raise InvalidInput(f"{version.ref} holds no CSV or Parquet files to predict on")
        return _Source(files, version)
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidInput(
            f"cannot predict on {path.name}: expected a .parquet or .csv file, or a dataset "
            "reference NAME@VERSION"
        )
    if not path.is_file():
        raise NotFound(f"no input file at {path}")
    return _Source([path], None)


def _row_total(source: _Source) -> int | None:
    """The number of input rows when known without reading the data."""
    import pyarrow.parquet as pq

    if source.dataset is not None and source.dataset.row_count is not None:
        return source.dataset.row_count
    if all(path.suffix.lower() == ".parquet" for path in source.files):
        try:
            return sum(int(pq.ParquetFile(path).metadata.num_rows) for path in source.files)
        except Exception:  # unreadable files fail later with a clear message
            return None
    return None


def _chunks(
    source: _Source, schema: InputSchema, chunk_size: int, keep: list[str]
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Every non-empty chunk of the input, with the input row number of its first row: the
    model's columns, then those to keep."""
    offset = 0
    for path in source.files:
        for batch in _batches(path, schema, chunk_size, keep):
            if batch.num_rows:
                yield offset, batch
                offset += batch.num_rows


def _batches(
    path: Path, schema: InputSchema, chunk_size: int, keep: list[str]
) -> Iterator[pa.RecordBatch]:
    """The signature's columns of one file, then the columns to keep (each once, even when
    also a model input: `_split` selects them by name), `chunk_size` rows at most at a
    time."""
    import pyarrow as pa

    columns = [*schema.names, *keep]
    try:
        if path.suffix.lower() == ".parquet":
            batches = _parquet_batches(path, schema, chunk_size, columns, keep)
        else:
            batches = _csv_batches(path, schema, columns, keep)
        for batch in batches:
            for start in range(0, batch.num_rows, chunk_size):
                yield batch.slice(start, chunk_size)
    except pa.ArrowException as exc:
        raise InvalidInput(f"cannot read {path.name}: {_first_line(exc)}") from exc


def _parquet_batches(
    path: Path, schema: InputSchema, chunk_size: int, columns: list[str], keep: list[str]
) -> Iterator[Any]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    _require_columns(file.schema_arrow.names, schema, path)
    require_kept(file.schema_arrow.names, keep, path.name)
    wanted = list(dict.fromkeys(columns))
    for batch in file.iter_batches(batch_size=chunk_size, columns=wanted):
        yield _in_order(batch, columns)


def _in_order(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    """`batch`'s columns as `columns` lists them, a name listed twice given twice."""
    import pyarrow as pa

    names = batch.schema.names
    arrays = [batch.column(names.index(name)) for name in columns]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def _csv_batches(
    path: Path, schema: InputSchema, columns: list[str], keep: list[str]
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    types = {spec.name: pa.type_for_alias(_ARROW_TYPES[spec.type]) for spec in schema.specs}
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pcsv.ConvertOptions(column_types=types),
    )
    _require_columns(reader.schema.names, schema, path)
    require_kept(reader.schema.names, keep, path.name)
    for batch in reader:
        yield _in_order(batch, columns)


def _require_columns(present: list[str], schema: InputSchema, path: Path) -> None:
    missing = [spec for spec in schema.specs if spec.name not in set(present)]
    if missing:
        spec = missing[0]
        raise InvalidField(
            f"{path.name} has no column '{spec.name}' ({spec.type}), an input of the model",
            field=spec.name,
            hint=f"{len(missing)} input column(s) missing" if len(missing) > 1 else None,
        )


def _block(batch: pa.RecordBatch, schema: InputSchema, offset: int) -> Block:
    """A checked Block from a batch's columns: straight from numpy when every input is a
    number without nulls, else value by value (which names the first bad row)."""
    import numpy as np

    arrays = [batch.column(i) for i in range(batch.num_columns)]
    if schema.numeric and all(map(_plain, schema.specs, arrays)):
        columns = [array.to_numpy(zero_copy_only=False) for array in arrays]
        matrix = np.column_stack(columns).astype(np.float64, copy=False)
        if schema.matrix_ok(matrix):
            return Block(schema.names, batch.num_rows, matrix, columns=columns)
    try:
        return from_columns([array.to_pylist() for array in arrays], schema)
    except InvalidField as exc:
        if exc.row is None:
            raise
        row = offset + exc.row
        message = exc.message.replace(f"row {exc.row}:", f"row {row}:", 1)
        raise InvalidField(message, field=exc.field or "", row=row, hint=exc.hint) from exc


def _plain(spec: ColumnSpec, array: pa.Array) -> bool:
    import pyarrow as pa

    if array.null_count:
        return False
    if spec.type in NUMBERS:
        return bool(pa.types.is_integer(array.type) or pa.types.is_floating(array.type))
    return spec.type == "boolean" and bool(pa.types.is_boolean(array.type))


# --- the output ------------------------------------------------------------------------


def _write(
    tables: Iterable[pa.Table],
    source: _Source,
    target: Path,
    fmt: str,
    progress: Callable[[int], None] | None,
) -> int:
    """Stream the chunks' output tables into a temporary file, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    writer: TableWriter | None = None
    rows = 0
    try:
        for table in tables:
            if writer is None:
                writer = open_writer(fmt, partial, table.schema)
            writer.write(table)
            rows += table.num_rows
            if progress is not None:
                progress(table.num_rows)
        if writer is None:
            raise InvalidInput(f"the input {source.files[0].name} holds no rows")
        writer.close()
        writer = None
        os.replace(partial, target)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return rows


def predict_chunk(served: ServedModel, batch: pa.RecordBatch, offset: int) -> pa.Table:
    """The output table of one chunk whose first row is row `offset` of the input (run by
    both executors: here, or in a Ray actor)."""
    block = _block(batch, served.schema, offset)
    try:
        prediction = served.predict_rows(block)
    except InvalidField:
        raise
    except InvalidInput as exc:
        stop = offset + batch.num_rows - 1
        raise InvalidInput(f"rows {offset}-{stop}: {exc.message}", hint=exc.hint) from exc
    return _output_table(served, prediction, offset, batch.num_rows)


def _output_table(served: ServedModel, prediction: Prediction, offset: int, n: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    columns: dict[str, Any] = {
        "row_id": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
        "prediction": pa.array(prediction.predictions),
    }
    proba = prediction.probabilities
    if proba is not None:
        classes = served.classes or list(range(proba.shape[1]))
        for i, label in enumerate(classes):
            columns[f"proba_{label}"] = pa.array(proba[:, i].astype(np.float64, copy=False))
    columns["model_version"] = pa.repeat(pa.scalar(served.version_ref, pa.string()), n)
    return pa.table(columns)


# --- tracking and lineage --------------------------------------------------------------


@contextlib.contextmanager
def _tracked_run(
    served: ServedModel, input: str, chunk_size: int, executor: str
) -> Iterator[str | None]:
    """The active run's id, or a new "batch-predict" run's, ended FAILED on an error."""
    from loopline import tracking

    active = tracking.active_run()
    if active is not None:
        yield active.id
        return
    params = {
        "model": served.version_ref,
        "input": input,
        "chunk_size": chunk_size,
        "executor": executor,
    }
    with tracking.start_run(EXPERIMENT, name=served.name, params=params) as run:
        yield run.id


def _record_lineage(served: ServedModel, source: _Source) -> None:
    from loopline.data.load import record_use
    from loopline.lineage import record_input
    from loopline.registry import resolve
    from loopline.store import LinkKind

    version = resolve(served.version_ref)
    record_input(LinkKind.MODEL_VERSION, version.ref, version.id)
    if source.dataset is not None:
        record_use(source.dataset)


def _log_metrics(rows: int, seconds: float) -> None:
    from loopline import tracking

    rate = rows / seconds if seconds > 0 else 0.0
    tracking.log_metrics({"rows": float(rows), "rows_per_second": rate})


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
