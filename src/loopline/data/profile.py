"""The schema and statistical profile of a table stored as CSV and Parquet files.

A table is one or more files with the same columns (matched by name, in any order);
DuckDB reads them, so a table larger than memory is profiled in two scans without
being loaded (CSV is parsed once into a DuckDB table that spills to disk). CSV
dialect and column types are sniffed by DuckDB: a column holding both numbers and
text is read as VARCHAR (the whole file is sniffed again when a value after DuckDB's
sample contradicts the sniffed type). A CSV with ragged rows or an unterminated
quoted field is InvalidInput naming the file and line; a lone `"` in a file that
quotes nothing else is read as a literal character, as DuckDB does.

What the statistics mean:
- `count` counts non-NULL values (NaN and ±inf included), `nulls` the NULLs;
  `nullable` in the schema is True when the column holds at least one NULL (files
  declare nothing reliable: CSV has no nullability, most writers mark every Parquet
  column optional).
- For numbers, `min`, `max`, `mean`, `std` (sample), `quantiles` and `histogram`
  cover the finite values; `non_finite` counts NaN and ±inf, so one stray inf does
  not turn every other statistic into inf.
- Quantiles are exact (DuckDB's `quantile_cont`) unless they do not fit in DuckDB's
  memory limit; then they are t-digest estimates and the profile lists "quantiles"
  in `approximate`. `distinct` is exact up to `EXACT_DISTINCT_MAX_ROWS` rows and a
  HyperLogLog estimate (typically within 2 %) above, listed as "distinct".
- Strings and booleans get their `TOP_VALUES` most frequent values; strings, dates
  and times get min/max as text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.data._tables import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    TABULAR_SUFFIXES,
    TableSource,
    connect,
    is_csv,
    is_tabular,
    open_table,
    quote,
    read_table,
    run,
    session,
    with_tables,
)
from loopline.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CSV_SUFFIXES", "EXACT_DISTINCT_MAX_ROWS", "HISTOGRAM_BINS", "PARQUET_SUFFIXES", "QUANTILES",
    "TABULAR_SUFFIXES", "TOP_VALUES", "ColumnProfile", "ColumnSchema", "TableProfile",
    "TableSource", "connect", "is_numeric", "json_value", "open_table", "profile_table", "quote",
    "read_table", "run", "tabular_files", "with_tables",
]  # fmt: skip
QUANTILES: dict[str, float] = {
    "p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99,
}  # fmt: skip
HISTOGRAM_BINS = 20
TOP_VALUES = 10
EXACT_DISTINCT_MAX_ROWS = 200_000  # above this, exact distinct counts cost more than a profile
_TOP_IN_SCAN_MAX_DISTINCT = 10_000  # above this, a column's top values get their own query
_MAX_QUERIES = 8  # concurrent summary queries (see _aggregate)

_FLOATS = {"FLOAT", "DOUBLE"}
_INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
_ORDERED = ("DATE", "TIME", "TIMESTAMP", "UUID", "INTERVAL")  # min/max shown as text


# --- what a profile is ---------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSchema:
    """One column of a table's schema."""

    name: str
    type: str  # DuckDB's name for the type, e.g. "BIGINT", "VARCHAR", "DECIMAL(10,2)"
    nullable: bool  # the column holds at least one NULL

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        return cls(str(data["name"]), str(data["type"]), bool(data["nullable"]))


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column; numeric ones cover its finite values (module docstring)."""

    name: str
    type: str
    count: int
    nulls: int
    distinct: int
    min: float | str | None
    max: float | str | None
    mean: float | None
    std: float | None
    quantiles: dict[str, float] | None  # "p01" ... "p99", numbers only
    histogram: tuple[list[float], list[int]] | None  # (bin edges, counts), numbers only
    top_values: list[tuple[str, int]] | None  # strings and booleans: most frequent first
    non_finite: int = 0  # NaN, inf and -inf values

    @property
    def null_rate(self) -> float:
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: NaN and ±inf become the strings "nan", "inf" and "-inf"."""
        return {
            "name": self.name,
            "type": self.type,
            "count": self.count,
            "nulls": self.nulls,
            "non_finite": self.non_finite,
            "distinct": self.distinct,
            "min": json_value(self.min),
            "max": json_value(self.max),
            "mean": json_value(self.mean),
            "std": json_value(self.std),
            "quantiles": json_value(self.quantiles),
            "histogram": None
            if self.histogram is None
            else {"edges": json_value(self.histogram[0]), "counts": self.histogram[1]},
            "top_values": None if self.top_values is None else [list(t) for t in self.top_values],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        numeric = is_numeric(str(data["type"]))
        quantiles, histogram = data.get("quantiles"), data.get("histogram")
        top = data.get("top_values")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            non_finite=int(data.get("non_finite", 0)),
            distinct=int(data["distinct"]),
            min=_number(data.get("min")) if numeric else data.get("min"),
            max=_number(data.get("max")) if numeric else data.get("max"),
            mean=_number(data.get("mean")),
            std=_number(data.get("std")),
            quantiles=None if quantiles is None else {k: _float(v) for k, v in quantiles.items()},
            histogram=None
            if histogram is None
            else ([_float(e) for e in histogram["edges"]], [int(c) for c in histogram["counts"]]),
            top_values=None if top is None else [(str(v), int(n)) for v, n in top],
        )


@dataclass(frozen=True)
class TableProfile:
    """A table's row count, schema and per-column statistics (same order)."""

    row_count: int
    columns: tuple[ColumnSchema, ...]
    stats: tuple[ColumnProfile, ...]
    approximate: tuple[str, ...] = ()  # estimated statistics: "distinct", "quantiles"

    def column(self, name: str) -> ColumnProfile:
        """The statistics of column `name`."""
        for stat in self.stats:
            if stat.name == name:
                return stat
        raise NotFound(f"the table has no column {name!r}")

    def to_dict(self) -> dict[str, object]:
        """JSON-safe (NaN and ±inf as strings); `from_dict` reads it back unchanged."""
        return {
            "row_count": self.row_count,
            "columns": [c.to_dict() for c in self.columns],
            "stats": [s.to_dict() for s in self.stats],
            "approximate": list(self.approximate),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableProfile:
        try:
            return cls(
                row_count=int(data["row_count"]),
                columns=tuple(ColumnSchema.from_dict(c) for c in data["columns"]),
                stats=tuple(ColumnProfile.from_dict(s) for s in data["stats"]),
                approximate=tuple(data.get("approximate", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a table profile: {exc!r}") from exc


def json_value(value: object) -> Any:
    """`value` as JSON-safe data: NaN/±inf as strings, dates in ISO 8601, decimals as floats."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return json_value(float(value))
    return str(value)  # UUID, timedelta, ...


def _float(value: object) -> float:
    return float(value)  # type: ignore[arg-type]  # JSON numbers, or "nan"/"inf"/"-inf"


def _number(value: object) -> float | None:
    """A number read back from JSON; integers stay integers."""
    return None if value is None else value if isinstance(value, int) else _float(value)


def is_numeric(type_: str) -> bool:
    """True for DuckDB's integer, floating-point and decimal types."""
    return type_ in _FLOATS or type_ in _INTEGERS or type_.startswith("DECIMAL")


def _is_categorical(type_: str) -> bool:
    return type_ in ("VARCHAR", "BOOLEAN") or type_.startswith("ENUM")


# --- finding tables -------------------------------------------------------------------


def tabular_files(paths: Sequence[Path]) -> list[Path]:
    """The CSV and Parquet files among `paths` (folders are searched), sorted.

    Entries whose name starts with a dot inside a searched folder are skipped.
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(
                p
                for p in path.rglob("*")
                if p.is_file()
                and is_tabular(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif is_tabular(path):
            found.add(path)
    return sorted(found)


# --- profiling ------------------------------------------------------------------------


def profile_table(files: Sequence[Path]) -> TableProfile:
    """Schema and statistics of the table made of `files` (CSV and/or Parquet).

    Errors: NotFound for a missing file; InvalidInput for a file that is not tabular,
    cannot be parsed, or whose columns differ from the other files'.
    """
    return with_tables([files], lambda con, sources: _profile(con, sources[0]))


def _profile(con: duckdb.DuckDBPyConnection, source: TableSource) -> TableProfile:
    import duckdb

    if source.empty:
        return TableProfile(0, (), ())
    if any(is_csv(f) for f in source.files):  # parse CSV once, not once per scan
        run(con, f"CREATE TABLE profiled AS SELECT * FROM {source.sql}", source.params)
        source = replace(source, sql="profiled", params={})
    approximate = ["distinct"]
    try:
        summary = _summary_scan(con, source, exact_quantiles=True)
    except duckdb.OutOfMemoryException:
        summary = _summary_scan(con, source, exact_quantiles=False)
        approximate.append("quantiles")
    rows = summary.pop("rows")
    exact_distinct = rows <= EXACT_DISTINCT_MAX_ROWS
    if exact_distinct:
        approximate.remove("distinct")
    distribution = _distribution_scan(con, source, summary, exact_distinct=exact_distinct)
    stats = tuple(
        _column_profile(i, name, type_, rows, summary, distribution)
        for i, (name, type_) in enumerate(source.columns)
    )
    schema = tuple(ColumnSchema(s.name, s.type, s.nulls > 0) for s in stats)
    return TableProfile(rows, schema, stats, tuple(approximate))


def _projection(source: TableSource) -> str:
    """v{i}: column i as read; x{i}: its finite values as DOUBLE (numbers only)."""
    parts = []
    for i, (name, type_) in enumerate(source.columns):
        q = quote(name)
        parts.append(f"{q} AS v{i}")
        if type_ in _FLOATS:
            parts.append(f"CASE WHEN isfinite({q}) THEN {q}::DOUBLE END AS x{i}")
        elif is_numeric(type_):
            parts.append(f"{q}::DOUBLE AS x{i}")
    return f"(SELECT {', '.join(parts)} FROM {source.sql})"


def _aggregate(
    con: duckdb.DuckDBPyConnection, source: TableSource, groups: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """Named aggregates over the projected table, one query per group, run side by side.

    DuckDB finishes an exact quantile on one thread, so with only one query a
    many-column profile leaves the other cores idle; each query reads only its
    columns, so splitting costs no extra I/O on Parquet or a table.
    """
    queries = [f"SELECT {', '.join(g.values())} FROM {_projection(source)}" for g in groups if g]
    if len(queries) <= 1:
        results = [run(con, sql, source.params) for sql in queries]
    else:
        cursors = [session(con.cursor()) for _ in queries]
        try:
            with ThreadPoolExecutor(len(queries)) as pool:
                results = list(pool.map(run, cursors, queries, [source.params] * len(queries)))
        finally:
            for cursor in cursors:
                cursor.close()
    names = [name for g in groups if g for name in g]
    return dict(zip(names, [v for rows in results for v in rows[0]], strict=True))


def _spread(per_column: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Deal the columns' aggregates into one group per core, costly columns first."""
    groups: list[dict[str, str]] = [{} for _ in range(min(os.cpu_count() or 1, _MAX_QUERIES))]
    for turn, aggs in enumerate(sorted(per_column, key=len, reverse=True)):
        groups[turn % len(groups)] |= aggs
    return groups


def _summary_scan(
    con: duckdb.DuckDBPyConnection, source: TableSource, *, exact_quantiles: bool
) -> dict[str, Any]:
    """Counts, extremes, moments and quantiles of every column: one scan."""
    points = ", ".join(str(q) for q in QUANTILES.values())
    quantile = "quantile_cont" if exact_quantiles else "approx_quantile"
    per_column: list[dict[str, str]] = [{"rows": "count(*)"}]
    for i, (_, type_) in enumerate(source.columns):
        aggs = {f"count{i}": f"count(v{i})", f"distinct{i}": f"approx_count_distinct(v{i})"}
        if is_numeric(type_):
            aggs |= {
                f"finite{i}": f"count(x{i})",
                f"min{i}": f"min(x{i})" if type_ in _FLOATS else f"min(v{i})",
                f"max{i}": f"max(x{i})" if type_ in _FLOATS else f"max(v{i})",
                f"mean{i}": f"avg(x{i})",
                f"q{i}": f"{quantile}(x{i}, [{points}])",
            }
        elif type_ == "VARCHAR" or type_.startswith(_ORDERED):
            aggs |= {f"min{i}": f"min(v{i})::VARCHAR", f"max{i}": f"max(v{i})::VARCHAR"}
        per_column.append(aggs)
    return _aggregate(con, source, _spread(per_column))


def _distribution_scan(
    con: duckdb.DuckDBPyConnection,
    source: TableSource,
    summary: dict[str, Any],
    *,
    exact_distinct: bool,
) -> dict[str, Any]:
    """Histograms, top values (and exact distinct counts for small tables): one scan."""
    per_column: list[dict[str, str]] = []
    separate: list[int] = []
    for i, (_, type_) in enumerate(source.columns):
        aggs = {f"distinct{i}": f"count(DISTINCT v{i})"} if exact_distinct else {}
        edges = _edges(summary, i) if is_numeric(type_) else None
        mean = summary.get(f"mean{i}")
        if mean is not None and math.isfinite(mean):  # two-pass variance: exact and cheap
            deviation = f"(x{i} - {mean!r}::DOUBLE)"
            aggs[f"squares{i}"] = f"sum({deviation} * {deviation})"  # ** costs 8 times more
        if edges is not None and len(edges) > 2:
            # trunc, not floor: x >= lo, and it costs a quarter; hi's bin 20 joins bin 19
            scale = HISTOGRAM_BINS / (edges[-1] - edges[0])
            bin_ = f"trunc((x{i} - {edges[0]!r}::DOUBLE) * {scale!r}::DOUBLE)::INTEGER"
            aggs[f"hist{i}"] = f"histogram({bin_})"
        elif _is_categorical(type_) and summary[f"distinct{i}"] <= _TOP_IN_SCAN_MAX_DISTINCT:
            aggs[f"top{i}"] = f"histogram(v{i}::VARCHAR)"
        elif _is_categorical(type_):
            separate.append(i)
        per_column.append(aggs)
    found = _aggregate(con, source, _spread(per_column))
    for i in separate:
        sql = (
            f"SELECT v{i}::VARCHAR AS v, count(*) AS n FROM {_projection(source)} "
            f"WHERE v{i} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {TOP_VALUES}"
        )
        found[f"top{i}"] = dict(run(con, sql, source.params))
    return found


def _edges(summary: dict[str, Any], i: int) -> list[float] | None:
    """HISTOGRAM_BINS + 1 equal-width bin edges over the finite range; [v, v] if constant."""
    lo, hi = summary[f"min{i}"], summary[f"max{i}"]
    if lo is None:
        return None
    lo, hi = float(lo), float(hi)
    width = (hi - lo) / HISTOGRAM_BINS
    # A range too wide or too narrow (subnormal) for a double's bin width, or for the
    # scale the histogram query multiplies by (1 / width): one bin, as for a constant.
    if hi == lo or not math.isfinite(width) or width == 0 or not math.isfinite(1 / width):
        return [lo, hi]
    return [lo + k * width for k in range(HISTOGRAM_BINS)] + [hi]


def _column_profile(
    i: int,
    name: str,
    type_: str,
    rows: int,
    summary: dict[str, Any],
    distribution: dict[str, Any],
) -> ColumnProfile:
    count = summary[f"count{i}"]
    numeric = is_numeric(type_)
    quantiles = histogram = None
    if numeric and summary[f"q{i}"] is not None:
        quantiles = dict(zip(QUANTILES, map(float, summary[f"q{i}"]), strict=True))
    if numeric:
        histogram = _histogram(
            _edges(summary, i), distribution.get(f"hist{i}"), summary[f"finite{i}"]
        )
    top = None
    if _is_categorical(type_):
        counts: dict[str, int] = distribution.get(f"top{i}") or {}
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
    return ColumnProfile(
        name=name,
        type=type_,
        count=count,
        nulls=rows - count,
        non_finite=count - summary[f"finite{i}"] if numeric else 0,
        distinct=distribution.get(f"distinct{i}", summary[f"distinct{i}"]),
        min=_extreme(summary.get(f"min{i}")),
        max=_extreme(summary.get(f"max{i}")),
        mean=summary.get(f"mean{i}"),
        std=_std(summary, distribution, i) if numeric else None,
        quantiles=quantiles,
        histogram=histogram,
        top_values=top,
    )


def _std(summary: dict[str, Any], distribution: dict[str, Any], i: int) -> float | None:
    """The sample standard deviation of the finite values (None below two of them)."""
    finite, mean = summary[f"finite{i}"], summary[f"mean{i}"]
    if finite < 2:
        return None
    if not math.isfinite(mean):
        return math.nan  # the values overflow a double
    return math.sqrt(distribution[f"squares{i}"] / (finite - 1))


def _histogram(
    edges: list[float] | None, bins: Mapping[int, int] | None, finite: int
) -> tuple[list[float], list[int]] | None:
    if edges is None:
        return None
    if len(edges) == 2:
        return edges, [finite]
    counts = [0] * HISTOGRAM_BINS
    for index, n in (bins or {}).items():
        counts[min(index, HISTOGRAM_BINS - 1)] += n
    return edges, counts


def _extreme(value: object) -> float | str | None:
    if value is None or isinstance(value, int | float | str):
        return value
    return float(value)  # type: ignore[arg-type]  # DECIMAL
