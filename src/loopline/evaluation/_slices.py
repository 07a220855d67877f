"""Slices of an evaluation frame: by a column's values or by a condition such as `age > 60`.

Conditions are written in loopline's condition language (loopline.expr: `and`, `or`,
`not`, parentheses, `== != < <= > >=`, `in (...)`, `is [not] null`); this module turns
the parsed tree into a boolean mask directly; the text is never evaluated (no eval, no
DataFrame.query). Names are columns (`income`, or `` `mean radius` `` in backticks), and
a boolean column may stand alone as a condition. Strings are single-quoted; a
double-quoted string still works, with a DeprecationWarning.

Numbers compare with numeric (or boolean, as 0/1) columns, strings with the other columns
(with date-time columns as timestamps: `day >= '2024-05-01'`); a missing value satisfies
only `!=`, `not in` and `is null`. Errors name 0-based positions.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from loopline import expr
from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Mask = npt.NDArray[np.bool_]

MAX_LENGTH = 5_000
MAX_DEPTH = expr.MAX_DEPTH
LOW_CARDINALITY = 20
"""Numeric columns with more distinct values than this are cut into quartiles."""

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_CELL = "a column, number or string"
SLICE = expr.Dialect(
    "slice",
    double_quotes="string",
    subject=_CELL,
    value=_CELL,
    literal="a number or a string",
    end="the end of the condition",
    quoted_name="column name",
    keyword_note=" (backquote a column with that name)",
    bare_names=True,
    max_length=MAX_LENGTH,
)
"""How slice conditions word their errors; double quotes there once quoted strings."""


@dataclass(frozen=True)
class _Operand:
    """A column's values or a literal, with what it may be compared to."""

    values: Any  # a numpy array for columns, a float or str for literals
    numeric: bool  # numbers and booleans (as 0/1) compare with numbers
    label: str  # for error messages
    pos: int
    kind: Literal["literal", "boolean", "time", "other"] = "other"


def slice_mask(data: pd.DataFrame, condition: str) -> Mask:
    """The rows of `data` where `condition` (e.g. `income >= 1e5 and age < 30`) holds.

    Raises InvalidFilter (an InvalidInput, with `position`) for a syntax error, an unknown
    column, or a comparison of a number with text.
    """
    if not isinstance(condition, str):
        raise InvalidInput(f"a slice must be a column name or a condition, got {condition!r}")
    dialect = replace(SLICE, label=f"slice {condition!r}")
    parsed = expr.parse(condition, dialect)
    mask = _Masker(data, condition, dialect).mask(parsed.condition)
    parsed.warn()
    return mask


def column_groups(data: pd.DataFrame, column: str) -> list[tuple[str, Mask]]:
    """(label, mask) per group of a column: one per value for text, booleans and numbers with
    at most LOW_CARDINALITY distinct values (missing values form a group "missing"), else the
    quartile bins "[low, high)" with the last bin closed.

    Text columns with more distinct values keep the LOW_CARDINALITY most frequent values.
    """
    import numpy as np
    import pandas as pd

    series = data[column]
    present = series.notna().to_numpy()
    counts = series.value_counts(dropna=True)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and len(counts) > LOW_CARDINALITY:
        return _quartiles(series.to_numpy(dtype=float), present)
    values = list(counts.index[:LOW_CARDINALITY])
    with contextlib.suppress(TypeError):  # mixed types keep the frequency order
        values.sort()
    raw = series.to_numpy(dtype=object)
    groups = [(_label(value), np.asarray(raw == value, dtype=bool) & present) for value in values]
    if not present.all():
        groups.append(("missing", ~present))
    return groups


def _quartiles(values: Any, present: Mask) -> list[tuple[str, Mask]]:
    import numpy as np

    edges = np.unique(np.quantile(values[present], [0.0, 0.25, 0.5, 0.75, 1.0]))
    groups = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        last = i == len(edges) - 2
        inside = (values >= low) & ((values <= high) if last else (values < high))
        groups.append((f"[{_label(low)}, {_label(high)}{']' if last else ')'}", inside & present))
    return groups


def _label(value: Any) -> str:
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        return str(int(number)) if number.is_integer() else f"{number:.6g}"
    return str(value)


class _Masker:
    """A parsed condition to a boolean mask over the rows of `data`."""

    def __init__(self, data: pd.DataFrame, text: str, dialect: expr.Dialect) -> None:
        self.data = data
        self.text = text
        self.dialect = dialect

    def fail(self, position: int, detail: str) -> NoReturn:
        raise self.dialect.error(self.text, position, detail)

    def mask(self, node: expr.Condition) -> Mask:
        import numpy as np

        if isinstance(node, expr.And | expr.Or):
            masks = [self.mask(item) for item in node.items]
            combine = np.logical_and if isinstance(node, expr.And) else np.logical_or
            return np.asarray(combine.reduce(masks), dtype=bool)
        if isinstance(node, expr.Not):
            return ~self.mask(node.item)
        if isinstance(node, expr.Truth):
            column = self.operand(node.name)
            if column.kind != "boolean":
                detail = f"expected a comparison operator after {column.label}"
                self.fail(node.pos, f"{detail} (only a boolean column stands alone)")
            return np.asarray(column.values == 1, dtype=bool)
        return self.compare(node)

    def compare(self, node: expr.Compare) -> Mask:
        import numpy as np

        left, rows = self.operand(node.left), len(self.data)
        if node.right is None:
            missing = self.missing(left)
            return missing if node.op == "is null" else ~missing
        if isinstance(node.right, tuple):
            found = np.zeros(rows, dtype=bool)
            for item in node.right:
                found |= self.compare_two(left, "==", self.operand(item), node.pos)
            return found if node.op == "in" else ~found
        if node.op not in _OPS:
            self.fail(node.pos, f"operator {node.written!r} cannot be used in a slice")
        return self.compare_two(left, node.op, self.operand(node.right), node.pos)

    def compare_two(self, left: _Operand, op: str, right: _Operand, pos: int) -> Mask:
        import numpy as np

        if left.numeric != right.numeric:
            number, text = (left, right) if left.numeric else (right, left)
            self.fail(pos, f"cannot compare {number.label} with {text.label}")
        compare, rows = _OPS[op], len(self.data)
        if left.numeric:
            with np.errstate(invalid="ignore"):
                result = np.asarray(compare(left.values, right.values), dtype=bool)
            return np.broadcast_to(result, (rows,)).copy()
        left_values, right_values = self.as_time(left, right), self.as_time(right, left)
        return _compare_objects(compare, left_values, right_values, rows)

    def missing(self, operand: _Operand) -> Mask:
        import numpy as np
        import pandas as pd

        rows = len(self.data)
        if operand.kind == "literal":
            return np.full(rows, bool(pd.isna(operand.values)), dtype=bool)
        return np.asarray(pd.isna(operand.values), dtype=bool)

    def as_time(self, operand: _Operand, other: _Operand) -> Any:
        """A string literal compared with a date-time column, as a timestamp."""
        import pandas as pd

        if operand.kind != "literal" or other.kind != "time":
            return operand.values
        try:
            return pd.Timestamp(operand.values)
        except (ValueError, TypeError):
            self.fail(operand.pos, f"{operand.label} is not a date or time for {other.label}")

    def operand(self, node: expr.Operand) -> _Operand:
        import numpy as np
        import pandas as pd

        if isinstance(node, expr.Literal):
            if isinstance(node.value, float):
                return _Operand(node.value, True, f"the number {node.text}", node.pos, "literal")
            return _Operand(node.value, False, f"the string {node.text}", node.pos, "literal")
        name = ".".join(node.parts)
        if name not in self.data.columns:
            self.fail(node.pos, f"unknown column {name!r}")
        series = self.data[name]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=float, na_value=np.nan)
            if pd.api.types.is_bool_dtype(series):
                return _Operand(values, True, f"column {name!r}", node.pos, "boolean")
            return _Operand(values, True, f"numeric column {name!r}", node.pos)
        label = f"column {name!r}"
        if pd.api.types.is_datetime64_any_dtype(series):
            return _Operand(series.to_numpy(dtype=object), False, label, node.pos, "time")
        return _Operand(series.to_numpy(dtype=object), False, label, node.pos)


def _compare_objects(compare: Callable[[Any, Any], Any], left: Any, right: Any, rows: int) -> Mask:
    """Element-wise comparison of text values; a missing or incomparable value is False
    (True for `!=`)."""
    import numpy as np
    import pandas as pd

    if compare in (operator.eq, operator.ne) and isinstance(right, str):
        equal = np.broadcast_to(np.asarray(left == right, dtype=bool), (rows,))
        return equal.copy() if compare is operator.eq else ~equal
    lefts = left if isinstance(left, np.ndarray) else np.full(rows, left, dtype=object)
    rights = right if isinstance(right, np.ndarray) else np.full(rows, right, dtype=object)
    out = np.zeros(rows, dtype=bool)
    for i, (a, b) in enumerate(zip(lefts, rights, strict=True)):
        if pd.isna(a) or pd.isna(b):
            out[i] = compare is operator.ne
            continue
        try:
            out[i] = bool(compare(a, b))
        except TypeError:
            out[i] = compare is operator.ne
    return out
