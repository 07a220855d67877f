"""Reading tables stored as CSV and Parquet files into DuckDB."""

from __future__ import annotations

import contextlib
import csv
import gzip
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from loopline.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

T = TypeVar("T")

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABULAR_SUFFIXES: frozenset[str] = frozenset(CSV_SUFFIXES + PARQUET_SUFFIXES)


def is_tabular(path: Path) -> bool:
    """True for a CSV or Parquet file name (TABULAR_SUFFIXES, any case)."""
    return path.name.lower().endswith(tuple(TABULAR_SUFFIXES))


def is_csv(path: Path) -> bool:
    """True for a CSV or TSV file name, gzipped or not."""
    return path.name.lower().endswith(CSV_SUFFIXES)


# --- opening tables -------------------------------------------------------------------


@dataclass(frozen=True)
class TableSource:
    """One logical table over files: a SQL FROM item and the parameters it binds."""

    sql: str  # a parenthesized SELECT; file lists are bound parameters, never pasted
    params: dict[str, object]
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), in the first file's order
    files: tuple[Path, ...]

    @property
    def empty(self) -> bool:
        """True when no file has a header: no columns and no rows."""
        return not self.files


@contextlib.contextmanager
def connect() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that spills to a private temporary folder."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="loopline-duckdb-") as spill:
        con = session(duckdb.connect(":memory:", config={"temp_directory": spill}))
        try:
            yield con
        finally:
            con.close()


def session(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No progress bar on the terminal; timestamps with time zone shown in UTC."""
    con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
    return con


def with_tables(
    groups: Sequence[Sequence[Path]],
    work: Callable[[duckdb.DuckDBPyConnection, list[TableSource]], T],
) -> T:
    """Run `work` on one TableSource per group of files, DuckDB errors made InvalidInput.

    When a CSV value contradicts the type DuckDB sniffed from its sample, everything
    runs once more with types sniffed from whole files.
    """
    import duckdb

    try:
        return _attempt(groups, work, full_sniff=False)
    except duckdb.ConversionException:
        return _attempt(groups, work, full_sniff=True)


def _attempt(
    groups: Sequence[Sequence[Path]],
    work: Callable[[duckdb.DuckDBPyConnection, list[TableSource]], T],
    *,
    full_sniff: bool,
) -> T:
    import duckdb

    files = [path for group in groups for path in group]
    with connect() as con:
        try:
            sources = [open_table(con, g, f"t{i}", full_sniff) for i, g in enumerate(groups)]
            return work(con, sources)
        except duckdb.ConversionException as exc:
            if not full_sniff and any(is_csv(f) for f in files):
                raise
            raise _read_error(exc, files) from exc
        except duckdb.Error as exc:
            raise _read_error(exc, files) from exc


def open_table(
    con: duckdb.DuckDBPyConnection, files: Sequence[Path], name: str, full_sniff: bool = False
) -> TableSource:
    """Check `files` (present, tabular, readable, same columns) and describe their union."""
    if not files:
        raise InvalidInput("no files given: a table needs at least one CSV or Parquet file")
    for path in files:
        if not path.is_file():
            raise NotFound(f"file '{path}' does not exist or is not a file")
        if not is_tabular(path):
            suffixes = ", ".join(sorted(TABULAR_SUFFIXES))
            raise InvalidInput(f"'{path}' is not a CSV or Parquet file ({suffixes})")
    # A 0-byte CSV has no header: it adds no rows and no columns.
    kept = [p for p in files if not (is_csv(p) and p.stat().st_size == 0)]
    first: tuple[Path, list[str]] | None = None
    for path in kept:
        names = [n for n, _ in _describe(con, path)]
        if first is None:
            first = (path, names)
        elif set(names) != set(first[1]):
            raise InvalidInput(_column_mismatch(first[0], first[1], path, names))
    csvs = [_duckdb_path(p) for p in kept if is_csv(p)]
    parquets = [_duckdb_path(p) for p in kept if not is_csv(p)]
    sniff = ", sample_size=-1" if full_sniff else ""
    parts: list[str] = []
    params: dict[str, object] = {}
    if csvs:
        parts.append(f"SELECT * FROM read_csv(${name}_csv, {_MULTI}{sniff})")
        params[f"{name}_csv"] = csvs
    if parquets:
        parts.append(f"SELECT * FROM read_parquet(${name}_parquet, {_MULTI})")
        params[f"{name}_parquet"] = parquets
    sql = "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else "(SELECT 1 WHERE false)"
    columns: tuple[tuple[str, str], ...] = ()
    if parts:  # errors here are DuckDB's, handled by with_tables
        rel = con.sql(f"SELECT * FROM {sql}", params=params)
        columns = tuple((n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True))
    return TableSource(sql, params, columns, tuple(kept))


_MULTI = "union_by_name=true, hive_partitioning=false"  # partition folders add no columns


def _duckdb_path(path: Path) -> str:
    """The absolute path, with glob characters escaped (DuckDB globs every file path)."""
    return re.sub(r"([*?\[])", r"[\1]", str(path.absolute()))


def _describe(con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[str, str]]:
    """(name, type) of each column of one file; a CSV DuckDB cannot split is InvalidInput."""
    import duckdb

    reader = "read_csv" if is_csv(path) else "read_parquet"
    try:
        rel = con.sql(f"SELECT * FROM {reader}($f, {_MULTI})", params={"f": [_duckdb_path(path)]})
        columns = [(n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
    except duckdb.Error as exc:
        raise InvalidInput(_first_line(exc, [path])) from exc
    if is_csv(path) and len(columns) == 1:
        _check_one_column_csv(path, columns[0][0])
    elif is_csv(path) and all(re.fullmatch(r"column\d+", n) for n, _ in columns):
        # DuckDB found no header: with ragged rows it may have sniffed the widest row as
        # the shape and dropped the others. Check the file against its first line.
        _check_one_column_csv(path, _first_text_line(path))
    return columns


def _first_text_line(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as text:
        return text.readline().rstrip("\r\n")


def _check_one_column_csv(path: Path, header: str) -> None:
    """DuckDB reads a CSV it cannot split as one column: say which line breaks the file."""
    counts = {d: header.count(d) for d in ",;\t|"}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        return  # a real one-column file
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        try:
            width = len(next(reader, []))
            for row in reader:
                if row and len(row) != width:
                    raise InvalidInput(
                        f"malformed CSV file '{path}': line {reader.line_num} has "
                        f"{len(row)} fields, the header has {width}"
                    )
        except csv.Error as exc:
            where = f"malformed CSV file '{path}': line {reader.line_num}"
            raise InvalidInput(f"{where}: {exc}") from exc


def _column_mismatch(first: Path, first_names: list[str], path: Path, names: list[str]) -> str:
    missing = [n for n in first_names if n not in names]
    extra = [n for n in names if n not in first_names]
    parts = [f"lacks {', '.join(map(repr, missing))}"] if missing else []
    parts += [f"has extra {', '.join(map(repr, extra))}"] if extra else []
    differences = " and ".join(parts)
    return f"files of one table need the same columns: '{path}' {differences} (vs '{first}')"


def _read_error(exc: Exception, files: Sequence[Path]) -> InvalidInput:
    """One line naming the file (and CSV line) DuckDB failed on."""
    message = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", message)
    named = re.search(r"^\s*file = (.+)$", message, re.MULTILINE)
    if line and named:
        shown = named.group(1).strip()
        path = next((f for f in files if _duckdb_path(f) == shown), shown)
        reason = message.split("\n")[2].strip() if message.count("\n") >= 2 else "cannot be read"
        return InvalidInput(f"malformed CSV file '{path}': line {line.group(1)}: {reason}")
    return InvalidInput(_first_line(exc, files))


def _first_line(exc: Exception, files: Sequence[Path]) -> str:
    """'cannot read FILE: reason' from the first line of a DuckDB error."""
    text = re.sub(r"^[A-Za-z ]*Error: ", "", str(exc).strip().split("\n")[0])
    named = []
    for path in files:
        for shown in {_duckdb_path(path), str(path.absolute())}:
            if shown in text:
                named.append(path)
                text = text.replace(f"'{shown}'", "").replace(f'"{shown}"', "").replace(shown, "")
    text = re.sub(r"\s+", " ", text).strip(" :")
    named = list(dict.fromkeys(named)) or list(files)
    where = ", ".join(f"'{f}'" for f in named[:3]) + (" ..." if len(named) > 3 else "")
    return f"cannot read {where}: {text}"


def run(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object]
) -> list[tuple[Any, ...]]:
    """Execute `sql` with those of `params` it names (DuckDB rejects unused ones)."""
    named = set(re.findall(r"\$([A-Za-z_]\w*)", sql))
    return con.execute(sql, {k: v for k, v in params.items() if k in named}).fetchall()


def quote(name: str) -> str:
    """Any column name as a SQL identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


# --- reading --------------------------------------------------------------------------


@overload
def read_table(files: Sequence[Path], *, as_: Literal["pandas"] = ...) -> pd.DataFrame: ...
@overload
def read_table(files: Sequence[Path], *, as_: Literal["arrow"]) -> pa.Table: ...


def read_table(
    files: Sequence[Path], *, as_: Literal["pandas", "arrow"] = "pandas"
) -> pd.DataFrame | pa.Table:
    """The table made of `files` in memory, as a pandas DataFrame or an Arrow table.

    Columns are typed as `profile_table` types them, errors are the same; rows come
    file by file, CSV files before Parquet files.
    """
    if as_ not in ("pandas", "arrow"):
        raise InvalidInput(f"as_ must be 'pandas' or 'arrow', got {as_!r}")

    def read(con: duckdb.DuckDBPyConnection, sources: list[TableSource]) -> pd.DataFrame | pa.Table:
        source = sources[0]
        if source.empty:
            import pandas as pd
            import pyarrow as pa

            return pd.DataFrame() if as_ == "pandas" else pa.table({})
        rel = con.sql(f"SELECT * FROM {source.sql}", params=source.params)
        return rel.df() if as_ == "pandas" else rel.to_arrow_table()

    return with_tables([files], read)
