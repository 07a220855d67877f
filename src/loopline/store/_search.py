"""Compiling the query model (query.py) to SQLAlchemy expressions over the runs table.

Every value becomes a bound parameter; field names only ever select a column from a
fixed table (attributes) or become a bound `key = :key` condition (metrics, params,
tags), so no user text reaches SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, literal, not_, or_, select
from sqlalchemy.sql.elements import UnaryExpression

from loopline.errors import InvalidFilter, InvalidInput
from loopline.store._schema import latest_metrics, params, runs, tags
from loopline.store.query import (
    LIKE_ESCAPE,
    And,
    Compare,
    Condition,
    Field,
    Or,
    OrderBy,
    Scalar,
    like_pattern_error,
)

_TIME_ATTRIBUTES = {"start_time", "end_time"}


def matching_runs(
    experiment_ids: Sequence[str] | None, condition: Condition | None, include_deleted: bool
) -> Select[Any]:
    """The ids of the runs a search matches, unsorted (callers order, limit or count it)."""
    stmt = select(runs.c.id)
    if experiment_ids is not None:
        stmt = stmt.where(runs.c.experiment_id.in_(list(experiment_ids)))
    if not include_deleted:
        stmt = stmt.where(runs.c.deleted_at.is_(None))
    if condition is not None:
        stmt = stmt.where(compile_condition(condition))
    return stmt


def check_count(name: str, value: object, least: int, most: int | None) -> None:
    """InvalidInput unless `value` is an int in least..most (no upper bound for None)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < least
        or (most is not None and value > most)
    ):
        upper = "" if most is None else f"..{most}"
        raise InvalidInput(f"{name} must be an integer {least}{upper}, got {value!r}")


def counted(stmt: Select[Any]) -> Select[Any]:
    """How many rows `stmt` (unsorted) returns."""
    return select(func.count()).select_from(stmt.subquery())


def keys_of_runs(experiment_id: str, newest: int | None) -> dict[str, Select[Any]]:
    """For params, metrics and tags: the distinct keys the experiment's live runs hold
    (its `newest` runs only, unless None)."""
    members = select(runs.c.id).where(
        runs.c.experiment_id == experiment_id, runs.c.deleted_at.is_(None)
    )
    if newest is not None:
        members = members.order_by(runs.c.start_time.desc()).limit(newest)
    tables = {"params": params, "metrics": latest_metrics, "tags": tags}
    return {
        kind: select(table.c.key).where(table.c.run_id.in_(members)).distinct()
        for kind, table in tables.items()
    }


def compile_condition(condition: Condition) -> ColumnElement[bool]:
    """A boolean SQL expression over `runs` for a parsed filter."""
    if isinstance(condition, And):
        return and_(*(compile_condition(item) for item in condition.items))
    if isinstance(condition, Or):
        return or_(*(compile_condition(item) for item in condition.items))
    if condition.field.kind == "attribute":
        return _compare_attribute(condition)
    return _compare_keyed(condition)


def apply_order(stmt: Select[Any], order_by: tuple[OrderBy, ...]) -> Select[Any]:
    """Add ORDER BY clauses (joining the keyed tables they need); NULL/NaN sort last."""
    clauses: list[UnaryExpression[Any]] = []
    for position, order in enumerate(order_by):
        if order.field == DURATION:
            column: Any = _duration()
        elif order.field.kind == "attribute":
            column = _attribute_column(order.field.key)
        else:
            table = _keyed_table(order.field).alias(f"order_{position}")
            stmt = stmt.outerjoin(
                table, and_(table.c.run_id == runs.c.id, table.c.key == order.field.key)
            )
            column = table.c.value
        clause = column.desc() if order.descending else column.asc()
        clauses.append(clause.nulls_last())
    clauses += [runs.c.start_time.desc(), runs.c.id.asc()]
    return stmt.order_by(*clauses)


DURATION = Field("attribute", "duration")


def _duration() -> Any:
    """A run's duration in ms: to its end, or to now while it runs (sorts with the rest)."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return func.coalesce(runs.c.end_time, literal(now_ms)) - runs.c.start_time


def _keyed_table(field: Field) -> Any:
    return {"metric": latest_metrics, "param": params, "tag": tags}[field.kind]


def _compare_keyed(cmp: Compare) -> ColumnElement[bool]:
    table = _keyed_table(cmp.field)
    row_exists = exists(select(table.c.run_id)).where(
        table.c.run_id == runs.c.id, table.c.key == cmp.field.key
    )
    if cmp.op == "is null":
        return not_(row_exists)
    if cmp.op == "is not null":
        return row_exists
    value_test = (
        _metric_test(cmp) if cmp.field.kind == "metric" else _string_test(table.c.value, cmp)
    )
    return row_exists.where(value_test)


def _metric_test(cmp: Compare) -> ColumnElement[bool]:
    column = latest_metrics.c.value
    if cmp.op in ("in", "not in"):
        numbers = [_number(v, cmp) for v in _tuple(cmp)]
        finite = [n for n in numbers if not math.isnan(n)]
        has_nan = len(finite) < len(numbers)
        member = or_(column.in_(finite), column.is_(None) if has_nan else false())
        return member if cmp.op == "in" else and_(not_(member), column.is_not(None))
    number = _number(cmp.value, cmp)
    if math.isnan(number):  # NaN is stored as NULL; it equals nothing but itself
        if cmp.op == "=":
            return column.is_(None)
        if cmp.op == "!=":
            return column.is_not(None)
        return false()
    return _binary(column, cmp.op, number, cmp)


def _string_test(column: Any, cmp: Compare) -> ColumnElement[bool]:
    if cmp.op in ("in", "not in"):
        values = [str(v) for v in _tuple(cmp)]
        return _membership(column, cmp.op, values)
    return _binary(column, cmp.op, str(cmp.value), cmp)


def _compare_attribute(cmp: Compare) -> ColumnElement[bool]:
    column = _attribute_column(cmp.field.key)
    if cmp.op == "is null":
        return _null_test(column, negate=False)
    if cmp.op == "is not null":
        return _null_test(column, negate=True)
    convert = _attribute_converter(cmp.field.key)
    if cmp.op in ("in", "not in"):
        values = [convert(v, cmp) for v in _tuple(cmp)]
        return _membership(column, cmp.op, values)
    return _binary(column, cmp.op, convert(cmp.value, cmp), cmp)


def _membership(column: Any, op: str, values: list[Any]) -> ColumnElement[bool]:
    test: ColumnElement[bool] = column.in_(values) if op == "in" else column.not_in(values)
    return test


def _null_test(column: Any, *, negate: bool) -> ColumnElement[bool]:
    test: ColumnElement[bool] = column.is_not(None) if negate else column.is_(None)
    return test


def _attribute_column(name: str) -> Any:
    column = runs.c.get(name)
    if column is None or name in ("git_patch_hash", "packages_hash", "deleted_at"):
        raise InvalidInput(f"unknown run attribute {name!r}")
    return column


def _attribute_converter(name: str) -> Any:
    if name in _TIME_ATTRIBUTES:
        return _epoch_ms
    if name == "git_dirty":
        return _boolean
    if name == "status":
        return lambda value, _cmp: str(value).upper()
    return lambda value, _cmp: str(value)


def _binary(column: Any, op: str, value: Any, cmp: Compare) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op in ("like", "ilike"):
        problem = like_pattern_error(value)
        if problem is not None:
            raise _invalid(cmp, problem)
        # One escape rule on both back-ends (see query.LIKE_ESCAPE)
        like = column.like if op == "like" else column.ilike
        return like(value, escape=LIKE_ESCAPE)  # type: ignore[no-any-return]
    raise _invalid(cmp, f"operator {op!r} cannot be used here")


def _tuple(cmp: Compare) -> tuple[Scalar, ...]:
    if not isinstance(cmp.value, tuple) or not cmp.value:
        raise _invalid(cmp, f"{cmp.op} needs a non-empty list of values")
    return cmp.value


def _number(value: object, cmp: Compare) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(cmp, f"metrics.{cmp.field.key} compares to numbers, got {value!r}")
    return float(value)


def _epoch_ms(value: object, cmp: Compare) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _invalid(cmp, f"{cmp.field.key} must be a finite time, got {value!r}")
        return int(value)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise _invalid(cmp, f"{cmp.field.key} takes epoch ms or ISO-8601, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _boolean(value: object, cmp: Compare) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    raise _invalid(cmp, f"git_dirty is 'true' or 'false', got {value!r}")


def _invalid(cmp: Compare, message: str) -> InvalidFilter:
    return InvalidFilter(message, text=f"{cmp.field.kind}.{cmp.field.key}", position=0)
