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
