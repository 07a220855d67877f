"""The files batch prediction writes: Parquet, CSV or JSON Lines, chosen by the output's
extension so that `--output preds.csv` is a CSV file a spreadsheet opens, not Parquet
under a misleading name; and the input columns a user asks to keep (an `id`) beside the
predictions, so that each prediction can be joined back to its row.

Each writer streams: tables are appended one chunk at a time, so memory stays constant
whatever the number of rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
OUTPUT_COLUMNS = ("row_id", "prediction", "model_version")  # and proba_<class>
MAX_LISTED = 30  # input columns named in an unknown --keep column's error


def output_format(target: Path) -> str:
    """The format `target`'s extension names; raises InvalidInput for a directory or an
    extension that names no format we write (before any run starts or file is written)."""
    if target.is_dir():
        raise InvalidInput(
            f"the output {target} is a directory",
            hint=f"give a file name, e.g. {target / 'preds.parquet'}",
        )
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot write predictions to {target.name}: expected a .parquet, .csv or .jsonl "
            "file name (the extension chooses the format)"
        )
    return fmt


def keep_columns(keep: Sequence[str]) -> list[str]:
    """The input columns to keep, once each in the order given; raises InvalidInput for a
    name that is not a string or that the output already uses for its own columns."""
    if isinstance(keep, str):
        keep = [keep]
    names: list[str] = []
    for name in keep:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a column to keep must be a non-empty name, got {name!r}")
        if name in OUTPUT_COLUMNS or name.startswith("proba_"):
            raise InvalidInput(
                f"cannot keep the input column '{name}': the output has a column of that name",
                hint="rename the column in the input",
            )
        if name not in names:
            names.append(name)
    return names


def require_kept(present: list[str], keep: Sequence[str], source: str) -> None:
    """Raise InvalidInput naming the first column to keep that the input lacks, and the
    input's columns, so that a typo is fixed at once."""
    missing = [name for name in keep if name not in set(present)]
    if missing:
        listed = ", ".join(present[:MAX_LISTED]) + (", ..." if len(present) > MAX_LISTED else "")
        raise InvalidInput(
            f"{source} has no column '{missing[0]}' to keep; its columns: {listed}",
            hint=f"{len(missing)} column(s) to keep missing" if len(missing) > 1 else None,
        )


def with_kept(table: pa.Table, kept: pa.Table) -> pa.Table:
    """The output table with the kept input columns right after `row_id`."""
    import pyarrow as pa

    names = [table.column_names[0], *kept.column_names, *table.column_names[1:]]
    columns = [table.column(0), *kept.columns, *table.columns[1:]]
    return pa.Table.from_arrays(columns, names=names)


class TableWriter(Protocol):
    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def open_writer(fmt: str, path: Path, schema: pa.Schema) -> TableWriter:
    """A streaming writer of `fmt` at `path` for tables of `schema` (the first chunk's;
    later chunks are cast to it, so every row has the same types in every format)."""
    if fmt == "parquet":
        return _Parquet(path, schema)
    if fmt == "csv":
        return _Csv(path, schema)
    return _JsonLines(path, schema)


class _Parquet:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._schema = schema
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        self._writer.close()


class _Csv:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.csv as pcsv

        self._schema = schema
        self._writer = pcsv.CSVWriter(path, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        self._writer.close()


class _JsonLines:
    """One JSON object a line; NaN and infinities, which JSON cannot hold, as null."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._file: IO[str] = path.open("w", encoding="utf-8", newline="\n")

    def write(self, table: pa.Table) -> None:
        lines = (
            json.dumps({k: _json_value(v) for k, v in row.items()}, default=str) + "\n"
            for row in table.cast(self._schema).to_pylist()
        )
        self._file.writelines(lines)

    def close(self) -> None:
        self._file.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
