"""Comparing two versions of a table: schema, column statistics and rows by key.

`diff_schemas` and `diff_profiles` compare stored profiles (no data is read);
`diff_rows` joins the two tables' files in DuckDB on a key column, so it works on
tables larger than memory.

Column shifts are effect sizes, not test p-values (at 100k rows a KS test flags
unshifted columns): the mean shift and a Wasserstein distance in units of the old
standard deviation, and the population stability index (PSI). Both distances come
from the profiles' 20-bin histograms (values spread evenly inside a bin), so they
are estimates, and noisy below a few hundred rows; a PSI above 0.1 is commonly read
as a moderate shift, above 0.25 as a major one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.data.profile import (
    ColumnProfile,
    ColumnSchema,
    TableProfile,
    TableSource,
    is_numeric,
    json_value,
    quote,
    run,
    with_tables,
)
from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb

_PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[ColumnSchema, ...]
    removed: tuple[ColumnSchema, ...]
    retyped: tuple[tuple[str, str, str], ...]  # (column, old type, new type)
    nullability: tuple[tuple[str, bool, bool], ...] = ()  # (column, old, new) nullable

    @property
    def changed(self) -> bool:
        """True when a column was added, removed or retyped."""
        return bool(self.added or self.removed or self.retyped)

    def to_dict(self) -> dict[str, object]:
        return {
            "added": [c.to_dict() for c in self.added],
            "removed": [c.to_dict() for c in self.removed],
            "retyped": [{"column": c, "old": o, "new": n} for c, o, n in self.retyped],
            "nullability": [{"column": c, "old": o, "new": n} for c, o, n in self.nullability],
        }


@dataclass(frozen=True)
class ColumnShift:
    """How one column's statistics moved; None where a measure does not apply."""

    column: str
    old: ColumnProfile
    new: ColumnProfile
    mean_shift_std: float | None  # (new mean - old mean) / old std
    null_rate_change: float  # new share of NULLs - old share
    distinct_change: int
    wasserstein_std: float | None = None  # numbers: earth mover's distance / old std
    psi: float | None = None  # numbers, and categories whose top values list them all

    def to_dict(self) -> dict[str, object]:
        return {
            "column": self.column,
            "mean_shift_std": json_value(self.mean_shift_std),
            "null_rate_change": json_value(self.null_rate_change),
            "distinct_change": self.distinct_change,
            "wasserstein_std": json_value(self.wasserstein_std),
            "psi": json_value(self.psi),
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
        }


@dataclass(frozen=True)
class RowDiff:
    """Rows matched by `key`: counts, and up to N examples of each kind of change.

    `examples["added"]` and `["removed"]` are whole rows; `["changed"]` items are
    `{"key": value, "changes": {column: {"old": value, "new": value}}}`. Values are
    JSON-safe (see `json_value`); the examples are those with the smallest keys.
    """

    key: str
    added: int
    removed: int
    changed: int
    unchanged: int
    examples: dict[str, list[dict[str, object]]]
    changed_columns: dict[str, int]  # compared column -> rows in which it changed
    compared: tuple[str, ...] = ()  # the non-key columns present in both tables

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "changed_columns": dict(self.changed_columns),
            "compared": list(self.compared),
            "examples": self.examples,
        }


def diff_schemas(old: TableProfile, new: TableProfile) -> SchemaDiff:
    """Columns added, removed, retyped, and those whose nullability changed."""
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    both = [(before[c.name], c) for c in new.columns if c.name in before]
    return SchemaDiff(
        added=tuple(c for c in new.columns if c.name not in before),
        removed=tuple(c for c in old.columns if c.name not in after),
        retyped=tuple((o.name, o.type, n.type) for o, n in both if o.type != n.type),
        nullability=tuple(
            (o.name, o.nullable, n.nullable) for o, n in both if o.nullable != n.nullable
        ),
    )


def diff_profiles(old: TableProfile, new: TableProfile) -> list[ColumnShift]:
    """The statistical shift of every column present in both profiles, in new order."""
    before = {s.name: s for s in old.stats}
    return [_shift(before[s.name], s) for s in new.stats if s.name in before]


def _shift(old: ColumnProfile, new: ColumnProfile) -> ColumnShift:
    numeric = old.histogram is not None and new.histogram is not None
    return ColumnShift(
        column=new.name,
        old=old,
        new=new,
        mean_shift_std=None
        if old.mean is None or new.mean is None
        else _in_std(old, new.mean - old.mean),
        null_rate_change=new.null_rate - old.null_rate,
        distinct_change=new.distinct - old.distinct,
        wasserstein_std=_in_std(old, _wasserstein(old, new)) if numeric else None,
        psi=_numeric_psi(old, new) if numeric else _categorical_psi(old, new),
    )


def _in_std(old: ColumnProfile, distance: float | None) -> float | None:
    """`distance` in units of the old standard deviation (0 stays 0 for a constant)."""
    if distance is None:
        return None
    if old.std is not None and old.std > 0 and math.isfinite(old.std):
        return distance / old.std
    return 0.0 if distance == 0 else None


def _cdf(histogram: tuple[list[float], list[int]], x: float, *, left: bool = False) -> float:
    """The histogram's CDF at x (the limit from the left if `left`), mass spread per bin."""
    edges, counts = histogram
    if x < edges[0] or (left and x == edges[0]):
        return 0.0
    if x >= edges[-1]:
        return 1.0
    below = 0.0
    for (lo, hi), count in zip(itertools.pairwise(edges), counts, strict=True):
        if x >= hi:
            below += count
        elif x > lo:
            below += count * (x - lo) / (hi - lo)
    return below / sum(counts)


def _wasserstein(old: ColumnProfile, new: ColumnProfile) -> float | None:
    """The earth mover's distance between two histograms: the area between their CDFs."""
    assert old.histogram is not None and new.histogram is not None
    if not sum(old.histogram[1]) or not sum(new.histogram[1]):
        return None
    points = sorted(set(old.histogram[0]) | set(new.histogram[0]))
    area = 0.0
    for a, b in itertools.pairwise(points):  # both CDFs are linear between the points
        d0 = _cdf(old.histogram, a) - _cdf(new.histogram, a)
        d1 = _cdf(old.histogram, b, left=True) - _cdf(new.histogram, b, left=True)
        if d0 * d1 >= 0:
            area += (b - a) * (abs(d0) + abs(d1)) / 2
        else:  # the CDFs cross inside (a, b): two triangles
            area += (b - a) * (d0 * d0 + d1 * d1) / (2 * (abs(d0) + abs(d1)))
    return area


def _numeric_psi(old: ColumnProfile, new: ColumnProfile) -> float | None:
    """PSI over the old histogram's bins, plus one bin below and one above its range."""
    assert old.histogram is not None and new.histogram is not None
    edges, counts = old.histogram
    total = sum(counts)
    if not total or not sum(new.histogram[1]):
        return None
    expected = [0.0, *(c / total for c in counts), 0.0]
    # For a constant old column (edges [v, v]) the bins are: below v, at v, above v.
    cuts = [_cdf(new.histogram, edges[0], left=True)] + [_cdf(new.histogram, e) for e in edges[1:]]
    actual = [cuts[0], *(b - a for a, b in itertools.pairwise(cuts)), 1 - cuts[-1]]
    return _psi(expected, actual)


def _categorical_psi(old: ColumnProfile, new: ColumnProfile) -> float | None:
    """PSI over the categories, when both top-value lists hold every value."""
    if old.top_values is None or new.top_values is None or not old.count or not new.count:
        return None
    before, after = dict(old.top_values), dict(new.top_values)
    if sum(before.values()) != old.count or sum(after.values()) != new.count:
        return None  # more categories than the profile lists
    categories = sorted(before.keys() | after.keys())
    return _psi(
        [before.get(c, 0) / old.count for c in categories],
        [after.get(c, 0) / new.count for c in categories],
    )


def _psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _PSI_FLOOR), max(a, _PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


# --- rows -----------------------------------------------------------------------------


def diff_rows(
    old_files: Sequence[Path], new_files: Sequence[Path], key: str, *, examples: int = 5
) -> RowDiff:
    """Rows added, removed, changed and unchanged between two tables, matched by `key`.

    Columns present in both tables (other than the key) are compared; NaN equals NaN.
    Errors: InvalidInput when the key column is missing, NULL or duplicated on either
    side, or when a file cannot be read (see `profile_table`).
    """
    if examples < 0:
        raise InvalidInput(f"examples must be 0 or more, got {examples}")
    return with_tables(
        [old_files, new_files],
        lambda con, sources: _diff_rows(con, sources[0], sources[1], key, examples),
    )


def _diff_rows(
    con: duckdb.DuckDBPyConnection, old: TableSource, new: TableSource, key: str, limit: int
) -> RowDiff:
    for side, source in (("old", old), ("new", new)):
        _check_key(con, source, key, side)
    old_types, new_types = dict(old.columns), dict(new.columns)
    a_index = {n: i for i, (n, _) in enumerate(old.columns)}
    b_index = {n: i for i, (n, _) in enumerate(new.columns)}
    compared = [n for n, _ in old.columns if n in new_types and n != key]
    differs = [
        f"{_cast(f'a.a{a_index[n]}', old_types[n], new_types[n])} IS DISTINCT FROM "
        f"{_cast(f'b.b{b_index[n]}', old_types[n], new_types[n])}"
        for n in compared
    ]
    both = "a.k IS NOT NULL AND b.k IS NOT NULL"
    any_diff = " OR ".join(f"({d})" for d in differs) or "false"
    aggs = [
        "count(*) FILTER (WHERE a.k IS NULL)",
        "count(*) FILTER (WHERE b.k IS NULL)",
        f"count(*) FILTER (WHERE {both} AND ({any_diff}))",
        f"count(*) FILTER (WHERE {both} AND NOT ({any_diff}))",
        *(f"count(*) FILTER (WHERE {both} AND {d})" for d in differs),
    ]
    if limit:
        old_row = ", ".join(f"a.a{i}" for i in range(len(old.columns)))
        new_row = ", ".join(f"b.b{i}" for i in range(len(new.columns)))
        change_row = "".join(
            f", {d}, a.a{a_index[n]}, b.b{b_index[n]}"
            for d, n in zip(differs, compared, strict=True)
        )
        aggs += [
            f"arg_min(row({new_row}), b.k, {limit}) FILTER (WHERE a.k IS NULL)",
            f"arg_min(row({old_row}), a.k, {limit}) FILTER (WHERE b.k IS NULL)",
            f"arg_min(row(a.k{change_row}), a.k, {limit}) FILTER (WHERE {both} AND ({any_diff}))",
        ]
    key_type = (old_types[key], new_types[key])
    sql = (
        f"WITH a AS (SELECT {_cast(quote(key), *key_type)} AS k, "
        + ", ".join(f"{quote(n)} AS a{i}" for i, (n, _) in enumerate(old.columns))
        + f" FROM {old.sql}), b AS (SELECT {_cast(quote(key), *key_type)} AS k, "
        + ", ".join(f"{quote(n)} AS b{i}" for i, (n, _) in enumerate(new.columns))
        + f" FROM {new.sql}) SELECT {', '.join(aggs)} FROM a FULL OUTER JOIN b ON a.k = b.k"
    )
    row = run(con, sql, old.params | new.params)[0]
    found: dict[str, list[dict[str, object]]] = {"added": [], "removed": [], "changed": []}
    if limit:
        added_rows, removed_rows, changed_rows = (r or [] for r in row[4 + len(compared) :])
        found["added"] = [_as_row(new.columns, r) for r in added_rows]
        found["removed"] = [_as_row(old.columns, r) for r in removed_rows]
        found["changed"] = [_as_change(compared, r) for r in changed_rows]
    per_column = zip(compared, row[4 : 4 + len(compared)], strict=True)
    return RowDiff(
        key=key,
        added=row[0],
        removed=row[1],
        changed=row[2],
        unchanged=row[3],
        examples=found,
        changed_columns={c: n for c, n in per_column if n},
        compared=tuple(compared),
    )


def _check_key(con: duckdb.DuckDBPyConnection, source: TableSource, key: str, side: str) -> None:
    """The key column exists, holds no NULL and no value twice."""
    names = [n for n, _ in source.columns]
    if key not in names:
        shown = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
        raise InvalidInput(f"key column {key!r} is not in the {side} table (columns: {shown})")
    k = quote(key)
    sql = f"SELECT count(*) - count({k}), count({k}) - count(DISTINCT {k}) FROM {source.sql}"
    nulls, extra = run(con, sql, source.params)[0]
    if nulls:
        raise InvalidInput(f"key column {key!r} has {nulls:,} NULL value(s) in the {side} table")
    if extra:
        top = run(
            con,
            f"SELECT v::VARCHAR, count(*) AS n, count(*) OVER () FROM (SELECT {k} AS v FROM "
            f"{source.sql}) WHERE v IS NOT NULL GROUP BY v HAVING n > 1 ORDER BY n DESC, v "
            "LIMIT 3",
            source.params,
        )
        shown = ", ".join(f"{v!r} x{n}" for v, n, _ in top)
        raise InvalidInput(
            f"key column {key!r} is not unique in the {side} table: {top[0][2]:,} value(s) "
            f"appear more than once (e.g. {shown})"
        )


def _cast(expr: str, old_type: str, new_type: str) -> str:
    """`expr` cast so that values of the two types compare by meaning."""
    if old_type == new_type:
        return expr
    if is_numeric(old_type) and is_numeric(new_type):
        return f"{expr}::DOUBLE"
    return f"{expr}::VARCHAR"


def _as_row(columns: Sequence[tuple[str, str]], values: Sequence[Any]) -> dict[str, object]:
    return {name: json_value(v) for (name, _), v in zip(columns, values, strict=True)}


def _as_change(compared: Sequence[str], values: Sequence[Any]) -> dict[str, object]:
    """(key, then per column: differs, old, new) -> {"key", "changes"}."""
    changes = {
        name: {"old": json_value(values[2 + 3 * i]), "new": json_value(values[3 + 3 * i])}
        for i, name in enumerate(compared)
        if values[1 + 3 * i]
    }
    return {"key": json_value(values[0]), "changes": changes}
