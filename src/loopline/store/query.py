"""The run-search query model: what a parsed filter and order-by become.

The tracking layer parses users' filter strings into these objects; the metadata store
compiles them to SQL with bound parameters. Values never travel as SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

FieldKind = Literal["metric", "param", "tag", "attribute"]

ATTRIBUTES: frozenset[str] = frozenset(
    {
        "id",
        "name",
        "status",
        "user",
        "source",
        "start_time",
        "end_time",
        "parent_id",
        "experiment_id",
        "git_commit",
        "git_branch",
        "git_dirty",
    }
)
"""Run attributes a filter may name as `attributes.<name>` (times are epoch milliseconds
or ISO-8601 strings)."""

SORT_ONLY_ATTRIBUTES: frozenset[str] = frozenset({"duration"})
"""Attributes runs can be sorted by but not filtered on: `duration` is the end time
less the start time, up to now for a run still going (a column to click in the UI)."""

Op: TypeAlias = Literal[
    "=", "!=", "<", "<=", ">", ">=", "like", "ilike", "in", "not in", "is null", "is not null"
]
Scalar: TypeAlias = float | str
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True)
class Field:
    """A searchable field: `metrics.auc` is Field("metric", "auc")."""

    kind: FieldKind
    key: str


@dataclass(frozen=True)
class Compare:
    """One comparison; `value` is a tuple for in / not in, None for the null tests."""

    field: Field
    op: Op
    value: Value


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


Condition: TypeAlias = Compare | And | Or


@dataclass(frozen=True)
class OrderBy:
    """One sort key; runs missing the field (or holding NaN) always sort last."""

    field: Field
    descending: bool = False


LIKE_ESCAPE = "\\"
"""The escape character of LIKE and ILIKE patterns, on every back-end.

`%` matches any run of characters and `_` any one character; a backslash makes the
next character literal (`\\%` a percent sign, `\\_` an underscore, `\\\\` a backslash).
SQLite has no default escape character and PostgreSQL has the backslash, so the store
always says `ESCAPE '\\'`: the same pattern matches the same rows on both."""


def like_pattern_error(pattern: str) -> str | None:
    """Why `pattern` is not a valid LIKE pattern, or None: a lone backslash at its end
    escapes nothing (PostgreSQL refuses it, SQLite matches nothing)."""
    trailing = len(pattern) - len(pattern.rstrip(LIKE_ESCAPE))
    if trailing % 2:
        return "a LIKE pattern cannot end with a single backslash; write \\\\ for a backslash"
    return None
