"""Mergeable sketches of one prediction-log file, built when the file is delivered, so
that a monitor over a long window merges ~720 hourly sketches instead of rescanning the
rows (issue 14, "Past one machine").

Per model version in the file (sketches are kept apart by `model_version`), per column
(`input:NAME` for each field of the `inputs` struct, `prediction`, and `probability#I`
for the I-th class probability when every logged probability list has the same length):

- numbers (integers, floats, decimals): a KLL doubles sketch (k=200) of the finite values
  and exact counts: rows, nulls (null or NaN), non-finite (+/-inf), min, max, sum, sum of
  squares of the finite values. When the file has at most 1,000 distinct values in the
  column, their exact counts as text too (as Arrow casts them: "3", "2.5"), so that a
  column the monitor compares as categories (a classifier's integer predictions) needs no
  rows either.
- text and booleans: exact value counts when the file has at most 1,000 distinct values
  (exact and mergeable by adding), else a frequent-items sketch (lg_max_k = 11: counts of
  the ~1,500 most frequent values, each within total/1,500 of the truth); and the nulls.

All of a file's sketches are one blob: MAGIC, a 4-byte little-endian header length, the
JSON header (counts, value counts, and where each binary sketch is), then the binary
sketches (DataSketches' own serialisation). `read_file_sketch` reads it back; it refuses
(InvalidInput) a blob that is not one, so a corrupted sketch never passes for data.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

MAGIC = b"LLSKETCH"
#: the blob layout's version, also kept in the index (`prediction_log_sketches.format`)
SKETCH_FORMAT = 1
KLL_K = 200
#: a file column with at most this many distinct values keeps exact value counts
MAX_EXACT_VALUES = 1000
FREQUENT_LG_MAX_K = 11


@dataclass
class ColumnSketch:
    """One column of one model version in one file (see the module docstring).

    `kind` is "numeric" (kll, moments and maybe `values`) or "categorical" (`values` or
    `frequent`). `kll` and `frequent` are DataSketches objects (or None)."""

    kind: str
    rows: int
    nulls: int
    nonfinite: int = 0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    squares: float = 0.0
    kll: Any = None
    values: dict[str, int] | None = None
    frequent: Any = None


@dataclass
class FileSketch:
    """A file's sketches: model version -> (rows, column name -> ColumnSketch)."""

    rows: dict[str, int] = field(default_factory=dict)
    columns: dict[str, dict[str, ColumnSketch]] = field(default_factory=dict)


def sketch_file(path: Path) -> bytes:
    """The sketch blob of a delivered log file (see the module docstring).

    Raises ValueError, KeyError or TypeError (from pyarrow) for a file that is not a log
    file."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    wanted = [c for c in ("model_version", "prediction", "probabilities", "inputs") if c in names]
    return encode(sketch_table(pq.read_table(path, columns=wanted)))


def sketch_table(table: pa.Table) -> FileSketch:
    """The sketches of log rows (columns model_version, prediction, probabilities,
    inputs), per model version."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.combine_chunks()
    found = FileSketch()
    if "model_version" not in table.column_names:
        return found
    versions = table.column("model_version")
    present = [v for v in pc.unique(versions).to_pylist() if v is not None]
    for version in present:
        part = table if len(present) == 1 else table.filter(pc.equal(versions, pa.scalar(version)))
        found.rows[str(version)] = part.num_rows
        found.columns[str(version)] = _sketch_rows(part)
    return found


def _sketch_rows(table: pa.Table) -> dict[str, ColumnSketch]:
    import pyarrow as pa

    columns: dict[str, ColumnSketch] = {}
    if "inputs" in table.column_names:
        inputs = table.column("inputs").combine_chunks()
        if pa.types.is_struct(inputs.type):
            for index in range(inputs.type.num_fields):
                name = inputs.type.field(index).name
                sketch = sketch_column(inputs.field(index))
                if sketch is not None:
                    columns[f"input:{name}"] = sketch
    if "prediction" in table.column_names:
        sketch = sketch_column(table.column("prediction").combine_chunks())
        if sketch is not None:
            columns["prediction"] = sketch
    if "probabilities" in table.column_names:
        columns.update(_probability_sketches(table.column("probabilities").combine_chunks()))
    return columns


def sketch_column(column: pa.Array) -> ColumnSketch | None:
    """The sketch of one column's values; None for a type that is neither numbers, text
    nor booleans (nested values)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _categorical(column)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _numeric(column)
    if pa.types.is_null(kind):
        return ColumnSketch("null", len(column), len(column))
    return None


def _numeric(column: pa.Array) -> ColumnSketch:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasketches import kll_doubles_sketch

    values = pc.cast(column, pa.float64()).fill_null(float("nan"))
    numbers = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = np.sort(numbers[np.isfinite(numbers)])
    nulls = int(np.isnan(numbers).sum())
    sketch = ColumnSketch(
        "numeric", len(numbers), nulls, nonfinite=int(len(numbers) - finite.size - nulls)
    )
    if finite.size:
        sketch.count = int(finite.size)
        sketch.minimum = float(finite[0])
        sketch.maximum = float(finite[-1])
        with np.errstate(over="ignore", invalid="ignore"):
            sketch.total = float(finite.sum())
            sketch.squares = float(np.square(finite).sum())
        kll = kll_doubles_sketch(KLL_K)
        kll.update(finite)
        sketch.kll = kll
    sketch.values = _numeric_counts(finite, column.type, sketch.nonfinite)
    return sketch


def _numeric_counts(
    ordered: np.ndarray, arrow_type: pa.DataType, nonfinite: int
) -> dict[str, int] | None:
    """Exact counts as text of sorted finite numbers with at most MAX_EXACT_VALUES
    distinct values (None otherwise, or when +/-inf or decimals make text ambiguous)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if nonfinite or pa.types.is_decimal(arrow_type):
        return None
    if ordered.size == 0:
        return {}
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    if starts.size > MAX_EXACT_VALUES:
        return None
    counts = np.diff(np.append(starts, ordered.size))
    distinct = pa.array(ordered[starts])
    if not pa.types.is_floating(arrow_type):
        distinct = pc.cast(distinct, arrow_type)  # 3, not 3.0, as the exact path names it
    names = pc.cast(distinct, pa.string()).to_pylist()
    return dict(zip(names, counts.tolist(), strict=True))


def _categorical(column: pa.Array) -> ColumnSketch:
    text = _as_text(column)
    sketch = ColumnSketch("categorical", len(text), text.null_count)
    sketch.values = _exact_counts(text, limit_only=False)
    if sketch.values is None:
        import pyarrow.compute as pc
        from datasketches import frequent_strings_sketch

        counted = pc.value_counts(text.drop_null())
        frequent = frequent_strings_sketch(FREQUENT_LG_MAX_K)
        for name, count in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        ):
            frequent.update(name, count)
        sketch.frequent = frequent
    return sketch


def _exact_counts(text: pa.Array, *, limit_only: bool) -> dict[str, int] | None:
    """Value -> count of the non-null values; None past MAX_EXACT_VALUES distinct ones."""
    import pyarrow.compute as pc

    present = text.drop_null()
    if limit_only and pc.count_distinct(present).as_py() > MAX_EXACT_VALUES:
        return None
    counted = pc.value_counts(present)
    if len(counted) > MAX_EXACT_VALUES:
        return None
    names = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    return dict(zip(names, counts, strict=True))


def _as_text(column: pa.Array) -> pa.Array:
    """Values as text the way the monitor's categorical counts see them (NaN is null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    if column.type != pa.string():
        column = pc.cast(column, pa.string())
    return column


def _probability_sketches(column: pa.Array) -> dict[str, ColumnSketch]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return {}
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    sizes = np.unique(lengths[lengths > 0])
    if sizes.size != 1:
        return {}  # no probabilities, or lists of several lengths: the exact path reads them
    classes = int(sizes[0])
    good = lengths == classes
    picked = column.filter(pa.array(good))
    flat = pc.cast(pc.list_flatten(picked), pa.float64()).fill_null(float("nan"))
    matrix = np.full((len(column), classes), np.nan)
    matrix[good] = np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(-1, classes)
    return {
        f"probability#{index}": _numeric(pa.array(matrix[:, index], from_pandas=False))
        for index in range(classes)
    }


# -- the blob ----------------------------------------------------------------------------


def encode(sketch: FileSketch) -> bytes:
    """The blob of a FileSketch (see the module docstring)."""
    payload = bytearray()
    versions: dict[str, Any] = {}
    for version, columns in sketch.columns.items():
        described: dict[str, Any] = {}
        for name, column in columns.items():
            entry: dict[str, Any] = {
                "kind": column.kind,
                "rows": column.rows,
                "nulls": column.nulls,
                "nonfinite": column.nonfinite,
                "count": column.count,
                "min": _json_float(column.minimum),
                "max": _json_float(column.maximum),
                "sum": _json_float(column.total),
                "sum_of_squares": _json_float(column.squares),
                "values": column.values,
            }
            for key, binary in (("kll", column.kll), ("frequent", column.frequent)):
                if binary is not None:
                    data = binary.serialize()
                    entry[key] = [len(payload), len(data)]
                    payload += data
            described[name] = entry
        versions[version] = {"rows": sketch.rows[version], "columns": described}
    header = json.dumps({"format": SKETCH_FORMAT, "versions": versions}).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + bytes(payload)


def read_file_sketch(data: bytes) -> FileSketch:
    """The FileSketch of a blob `encode` wrote.

    Raises InvalidInput when the bytes are not such a blob (wrong magic, format, truncated,
    unreadable JSON or sketch)."""
    from datasketches import frequent_strings_sketch, kll_doubles_sketch

    if not isinstance(data, bytes) or not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise InvalidInput("not a prediction-log sketch blob")
    start = len(MAGIC) + 4
    (size,) = struct.unpack("<I", data[len(MAGIC) : start])
    try:
        header = json.loads(data[start : start + size])
        if header.get("format") != SKETCH_FORMAT:
            raise ValueError(f"format {header.get('format')!r}, not {SKETCH_FORMAT}")
        payload = data[start + size :]
        found = FileSketch()
        for version, about in header["versions"].items():
            found.rows[version] = int(about["rows"])
            columns: dict[str, ColumnSketch] = {}
            for name, entry in about["columns"].items():
                column = ColumnSketch(
                    kind=str(entry["kind"]),
                    rows=int(entry["rows"]),
                    nulls=int(entry["nulls"]),
                    nonfinite=int(entry["nonfinite"]),
                    count=int(entry["count"]),
                    minimum=float(entry["min"]),
                    maximum=float(entry["max"]),
                    total=float(entry["sum"]),
                    squares=float(entry["sum_of_squares"]),
                    values=_values(entry["values"]),
                )
                if "kll" in entry:
                    column.kll = kll_doubles_sketch.deserialize(_slice(payload, entry["kll"]))
                    if column.kll.n != column.count:
                        raise ValueError(f"{name}: the sketch holds {column.kll.n} values")
                if "frequent" in entry:
                    column.frequent = frequent_strings_sketch.deserialize(
                        _slice(payload, entry["frequent"])
                    )
                columns[str(name)] = column
            found.columns[str(version)] = columns
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InvalidInput(f"unreadable prediction-log sketch: {exc}") from exc
    return found


def _values(values: Any) -> dict[str, int] | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ValueError("value counts must be a mapping")
    return {str(name): int(count) for name, count in values.items()}


def _slice(payload: bytes, where: Any) -> bytes:
    offset, size = int(where[0]), int(where[1])
    if offset < 0 or size <= 0 or offset + size > len(payload):
        raise ValueError("a sketch lies outside the blob")
    return payload[offset : offset + size]


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)
