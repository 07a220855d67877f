"""Slices of an evaluation frame: by a column's values or by a condition such as `age > 60`.

Conditions go through a small tokenizer and recursive-descent parser that builds a boolean
mask directly; the text is never evaluated (no eval, no DataFrame.query):

    condition  := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand op operand | column          (a bare column must be boolean)
    operand    := column | number | 'string' | "string"
    column     := [A-Za-z_][A-Za-z0-9_]* | `any text`   (`` inside backquotes is one `)
    op         := == | != | > | >= | < | <=

Keywords are case-insensitive. Numbers compare with numeric (or boolean, as 0/1) columns,
strings with the other columns (with date-time columns as timestamps: `day >= '2024-05-01'`);
a missing value satisfies only `!=`. Errors name 0-based positions.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeAlias

from loopline.errors import InvalidFilter, InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Mask = npt.NDArray[np.bool_]

MAX_LENGTH = 5_000
MAX_DEPTH = 50
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
_KEYWORDS = frozenset({"and", "or", "not"})
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|>=|<=|>|<)
      | (?P<paren>[()])
      | (?P<quote>['"`])""",
    re.VERBOSE,
)
_Kind: TypeAlias = Literal["number", "word", "op", "paren", "string", "column", "eof"]


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str  # as written
    pos: int
    value: str = ""  # the decoded string or column name


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
    return _Parser(data, condition).parse()


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


class _Parser:
    def __init__(self, data: pd.DataFrame, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidInput(f"a slice must be a column name or a condition, got {text!r}")
        self.data = data
        self.text = text
        if len(text) > MAX_LENGTH:
            self.fail(MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
        self.tokens = list(self.tokenize())
        self.index = 0
        self.depth = 0

    def fail(self, position: int, detail: str) -> NoReturn:
        raise self.error(position, detail)

    def error(self, position: int, detail: str) -> InvalidFilter:
        message = f"invalid slice {self.text!r} at position {position}: {detail}"
        return InvalidFilter(message, text=self.text, position=position)

    def parse(self) -> Mask:
        if self.tokens[0].kind == "eof":
            self.fail(0, "the condition is empty")
        mask = self.or_expr()
        token = self.peek()
        if token.kind != "eof":
            self.fail(token.pos, f"expected 'and', 'or' or the end, got {token.text!r}")
        return mask

    # --- tokens -------------------------------------------------------------------------

    def tokenize(self) -> Iterator[_Token]:
        pos = 0
        while pos < len(self.text):
            match = _TOKEN.match(self.text, pos)
            if match is None:
                self.fail(pos, f"unexpected character {self.text[pos]!r}")
            kind = match.lastgroup
            if kind == "space":
                pos = match.end()
                continue
            token = self.quoted(pos) if kind == "quote" else _Token(kind, match.group(), pos)  # type: ignore[arg-type]
            yield token
            pos = token.pos + len(token.text)
        yield _Token("eof", "", len(self.text))

    def quoted(self, start: int) -> _Token:
        """A string ('...' or "...") or a column name (`...`); a doubled quote escapes it."""
        quote, chars, pos = self.text[start], [], start + 1
        while pos < len(self.text):
            char = self.text[pos]
            if char == quote and self.text[pos + 1 : pos + 2] == quote:
                chars.append(quote)
                pos += 2
            elif char == quote:
                kind: _Kind = "column" if quote == "`" else "string"
                return _Token(kind, self.text[start : pos + 1], start, "".join(chars))
            else:
                chars.append(char)
                pos += 1
        raise self.error(start, f"unterminated {'column name' if quote == '`' else 'string'}")

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += token.kind != "eof"
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == word:
            self.index += 1
            return True
        return False

    # --- grammar ------------------------------------------------------------------------

    def or_expr(self) -> Mask:
        mask = self.and_expr()
        while self.keyword("or"):
            mask = mask | self.and_expr()
        return mask

    def and_expr(self) -> Mask:
        mask = self.not_expr()
        while self.keyword("and"):
            mask = mask & self.not_expr()
        return mask

    def not_expr(self) -> Mask:
        token = self.peek()
        if self.depth >= MAX_DEPTH:
            self.fail(token.pos, f"nested deeper than {MAX_DEPTH}")
        self.depth += 1
        if self.keyword("not"):
            mask = ~self.not_expr()
        elif token.kind == "paren" and token.text == "(":
            self.advance()
            mask = self.or_expr()
            closing = self.advance()
            if closing.text != ")":
                self.fail(closing.pos, f"expected 'and', 'or' or ')', got {_shown(closing)}")
        else:
            mask = self.comparison()
        self.depth -= 1
        return mask

    def comparison(self) -> Mask:
        import numpy as np

        left = self.operand()
        token = self.peek()
        if token.kind != "op":
            if left.kind == "boolean":
                return np.asarray(left.values == 1, dtype=bool)
            self.fail(
                token.pos, f"expected a comparison operator after {left.label}, got {_shown(token)}"
            )
        self.advance()
        right = self.operand()
        if left.numeric != right.numeric:
            number, text = (left, right) if left.numeric else (right, left)
            self.fail(token.pos, f"cannot compare {number.label} with {text.label}")
        compare, rows = _OPS[token.text], len(self.data)
        if left.numeric:
            with np.errstate(invalid="ignore"):
                result = np.asarray(compare(left.values, right.values), dtype=bool)
            return np.broadcast_to(result, (rows,)).copy()
        left_values, right_values = self.as_time(left, right), self.as_time(right, left)
        return _compare_objects(compare, left_values, right_values, rows)

    def as_time(self, operand: _Operand, other: _Operand) -> Any:
        """A string literal compared with a date-time column, as a timestamp."""
        import pandas as pd

        if operand.kind != "literal" or other.kind != "time":
            return operand.values
        try:
            return pd.Timestamp(operand.values)
        except (ValueError, TypeError):
            self.fail(operand.pos, f"{operand.label} is not a date or time for {other.label}")

    def operand(self) -> _Operand:
        import numpy as np
        import pandas as pd

        token = self.advance()
        if token.kind == "number":
            number = float(token.text)
            return _Operand(number, True, f"the number {token.text}", token.pos, "literal")
        if token.kind == "string":
            return _Operand(token.value, False, f"the string {token.text}", token.pos, "literal")
        if token.kind == "word" and token.text.lower() in _KEYWORDS:
            self.fail(
                token.pos,
                f"expected a column, number or string, got {token.text!r} "
                "(backquote a column with that name)",
            )
        if token.kind not in ("word", "column"):
            self.fail(token.pos, f"expected a column, number or string, got {_shown(token)}")
        name = token.value if token.kind == "column" else token.text
        if name not in self.data.columns:
            self.fail(token.pos, f"unknown column {name!r}")
        series = self.data[name]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=float, na_value=np.nan)
            if pd.api.types.is_bool_dtype(series):
                return _Operand(values, True, f"column {name!r}", token.pos, "boolean")
            return _Operand(values, True, f"numeric column {name!r}", token.pos)
        label = f"column {name!r}"
        if pd.api.types.is_datetime64_any_dtype(series):
            return _Operand(series.to_numpy(dtype=object), False, label, token.pos, "time")
        return _Operand(series.to_numpy(dtype=object), False, label, token.pos)


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


def _shown(token: _Token) -> str:
    return "the end of the condition" if token.kind == "eof" else repr(token.text)
