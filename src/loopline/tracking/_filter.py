"""Run-search filters and order-by keys: the condition language (loopline.expr) turned
into the query model (store/query.py), which the store compiles to SQL with bound values.

The language is shared with slices and gate rules; what is the runs search's own lives
here: every comparison is `field op literal`, where a field is `prefix.name`

    prefix     := metrics|metric|params|param|tags|tag|attributes|attribute|attr|run
    op         := = | == | != | <> | < | <= | > | >= | like | ilike
                | in (...) | not in (...) | is null | is not null

and the field says what it compares with: metrics take numbers, params and tags strings
(a number is compared as written: params.max_depth = 6 compares with '6'), start_time
and end_time epoch ms or ISO-8601 strings, git_dirty 'true' or 'false'. `not` is not part
of a runs filter. Double quotes around a name (`params."my key"`) still work, with a
DeprecationWarning: write names in backticks.

LIKE and ILIKE patterns: `%` matches any run of characters, `_` any one character, and a
backslash makes the next character literal, on SQLite and PostgreSQL alike
(store.query.LIKE_ESCAPE): `params.x LIKE '50\\%'` matches `50%` only. The string
literal reads `\\\\` as one backslash first, so a literal backslash in a pattern is
written `\\\\\\\\` in filter text; a pattern ending in a lone backslash is an error.

Positions in errors are 0-based character offsets into the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal, NoReturn, TypeAlias

from loopline import expr
from loopline.store.query import (
    ATTRIBUTES,
    SORT_ONLY_ATTRIBUTES,
    And,
    Compare,
    Condition,
    Field,
    FieldKind,
    Op,
    Or,
    OrderBy,
    Scalar,
    like_pattern_error,
)

MAX_LENGTH = 10_000
"""Longer filters (and order-by items) are rejected before tokenizing."""
MAX_DEPTH = expr.MAX_DEPTH
"""Deeper parenthesis nesting is rejected rather than recursed into."""

# fmt: off
_PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric", "metric": "metric", "params": "param", "param": "param",
    "tags": "tag", "tag": "tag", "attributes": "attribute", "attribute": "attribute",
    "attr": "attribute", "run": "attribute",
}
# fmt: on
_OPS: dict[expr.Op, Op] = {
    "==": "=",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "like": "like",
    "ilike": "ilike",
    "in": "in",
    "not in": "not in",
    "is null": "is null",
    "is not null": "is not null",
}  # fmt: skip

_FIELD_HINT = "fields are metrics.<name>, params.<name>, tags.<name> or attributes.<name>"
_LIKE_HINT = "in filter text '\\\\' is one backslash of the pattern; '\\\\\\\\' matches one"
_OPERATOR_HINT = "operators are =, !=, <, <=, >, >=, like, ilike, in, not in, is [not] null"
_VALUE = "a number or a quoted string"
_VALUE_HINT = "values are numbers or single-quoted strings such as 'xgb'"
_NAME_AS_VALUE_HINT = "double quotes and backticks quote field names; quote values with '...'"

FILTER = expr.Dialect(
    "filter",
    double_quotes="name",
    subject="a field such as metrics.auc",
    subject_hint=_FIELD_HINT,
    operator_hint=_OPERATOR_HINT,
    value=_VALUE,
    literal=_VALUE,
    max_length=MAX_LENGTH,
)
"""How runs filters word their errors; double quotes there once quoted names."""

# What each kind of field may be compared with (besides in, not in, is [not] null).
_ValueType: TypeAlias = Literal["number", "string", "time", "boolean"]
_ALLOWED_OPS: dict[_ValueType, frozenset[str]] = {
    "number": frozenset({"=", "!=", "<", "<=", ">", ">="}),
    "time": frozenset({"=", "!=", "<", "<=", ">", ">="}),
    "string": frozenset({"=", "!=", "like", "ilike"}),
    "boolean": frozenset({"=", "!="}),
}
_OP_HINTS: dict[_ValueType, str] = {
    "number": "{plural} are numbers: use =, !=, <, <=, >, >=, in or is null",
    "time": "times take =, !=, <, <=, >, >=, in or is null",
    "string": "{plural} are strings: use =, !=, like, ilike, in or is null",
    "boolean": "git_dirty is 'true' or 'false': use =, != or in",
}


def parse_filter(text: str | None) -> Condition | None:
    """Parse a run-search filter such as `metrics.auc > 0.9 and params.model = 'xgb'`.

    Returns None for None or blank text, a bare Compare for a single comparison, and
    flattened And/Or otherwise. Raises InvalidFilter (with `position`) on any error.
    """
    if text is None or not text.strip():
        return None
    parsed = expr.parse(text, FILTER)
    condition = _Translator(text, FILTER).condition(parsed.condition)
    parsed.warn()
    return condition


def parse_order_by(items: Sequence[str] | None) -> tuple[OrderBy, ...]:
    """Parse order-by items such as `metrics.auc desc` or `attributes.start_time`.

    Each item is a field and an optional `asc`/`desc`; a single string is one item.
    Raises InvalidFilter naming the bad item.
    """
    if items is None:
        return ()
    if isinstance(items, str):
        items = [items]
    return tuple(_parse_order_item(item) for item in items)


def _parse_order_item(item: str) -> OrderBy:
    dialect = replace(FILTER, label=f"order_by item {expr.clip(item)}")
    key = expr.parse_sort_key(item, dialect)
    field = _Translator(item, dialect, ATTRIBUTES | SORT_ONLY_ATTRIBUTES).field(key.key)
    key.warn(stacklevel=4)  # past parse_order_by and its generator
    return OrderBy(field, descending=key.descending)


class _Translator:
    """A parsed filter to the query model, checking each field's operators and values."""

    def __init__(
        self, text: str, dialect: expr.Dialect, attributes: frozenset[str] = ATTRIBUTES
    ) -> None:
        self.text = text
        self.dialect = dialect
        self.attributes = attributes

    def fail(self, position: int, detail: str, hint: str | None = None) -> NoReturn:
        raise self.dialect.error(self.text, position, detail, hint)

    def condition(self, node: expr.Condition) -> Condition:  # noqa: RET503 (fail raises)
        if isinstance(node, expr.And | expr.Or):
            items = tuple(self.condition(item) for item in node.items)
            return And(items) if isinstance(node, expr.And) else Or(items)
        if isinstance(node, expr.Compare):
            return self.compare(node)
        position = node.pos if isinstance(node, expr.Not) else node.name.pos
        self.fail(position, f"expected {FILTER.subject}, got 'not'", hint=_FIELD_HINT)

    def field(self, operand: expr.Operand) -> Field:
        kind = None
        if isinstance(operand, expr.Name) and len(operand.parts) > 1:
            kind = _PREFIXES.get(operand.parts[0].lower())
        if kind is None or not isinstance(operand, expr.Name):
            detail = f"expected {FILTER.subject}, got {expr.show(operand)}"
            self.fail(operand.pos, detail, hint=_FIELD_HINT)
        key, key_pos = ".".join(operand.parts[1:]), operand.starts[1]
        if kind == "attribute" and key not in self.attributes:
            valid = ", ".join(sorted(self.attributes))
            self.fail(key_pos, f"unknown attribute {expr.clip(key)}; valid attributes are {valid}")
        return Field(kind, key)

    def compare(self, node: expr.Compare) -> Compare:
        field = self.field(node.left)
        op = _OPS[node.op]
        if node.right is None:
            return Compare(field, op, None)
        if isinstance(node.right, tuple):
            return Compare(field, op, tuple(self.value(field, item) for item in node.right))
        value_type = _value_type(field)
        if op not in _ALLOWED_OPS[value_type]:
            hint = _OP_HINTS[value_type].format(plural=field.kind + "s")
            detail = f"operator {node.written!r} cannot be used with {_describe(field)}"
            self.fail(node.pos, detail, hint=hint)
        value = self.value(field, node.right)
        if op in ("like", "ilike"):
            problem = like_pattern_error(str(value))
            if problem is not None:
                self.fail(node.right.pos, problem, hint=_LIKE_HINT)
        return Compare(field, op, value)

    def value(self, field: Field, operand: expr.Operand) -> Scalar:
        """The literal's value as the field's type compares it, or an error at the literal."""
        if isinstance(operand, expr.Name):
            hint = _VALUE_HINT if operand.text[:1] not in '`"' else _NAME_AS_VALUE_HINT
            self.fail(operand.pos, f"expected {_VALUE}, got {expr.show(operand)}", hint)
        value_type = _value_type(field)
        if isinstance(operand.value, float) and value_type in ("number", "time"):
            if value_type == "time" and not math.isfinite(operand.value):
                self.fail(
                    operand.pos, f"{_describe(field)} needs a finite time, got {operand.text}"
                )
            return operand.value
        if value_type == "number":
            detail = f"{_describe(field)} compares to numbers, got {expr.show(operand)}"
            self.fail(operand.pos, detail, hint="metrics are numbers, e.g. metrics.auc > 0.9")
        # Strings, and numbers as written: params.max_depth = 6 compares with '6'.
        text = operand.value if isinstance(operand.value, str) else operand.text
        if value_type == "time" and not _is_iso_time(text):
            shown = expr.show(operand)
            detail = f"{_describe(field)} takes epoch ms or an ISO-8601 time, got {shown}"
            self.fail(operand.pos, detail, hint="e.g. attributes.start_time > '2024-05-01T12:00'")
        if value_type == "boolean" and text.lower() not in ("true", "false"):
            detail = f"{_describe(field)} is 'true' or 'false', got {expr.show(operand)}"
            self.fail(operand.pos, detail)
        return text


def _value_type(field: Field) -> _ValueType:
    if field.kind == "metric":
        return "number"
    if field.kind != "attribute":
        return "string"
    if field.key in ("start_time", "end_time"):
        return "time"
    return "boolean" if field.key == "git_dirty" else "string"


def _is_iso_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _describe(field: Field) -> str:
    return f"{field.kind}s.{expr.clip(field.key, quote=False)}"
