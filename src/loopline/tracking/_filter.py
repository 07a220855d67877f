"""Parsing run-search filters and order-by keys into the query model (store/query.py).

A hand-written tokenizer and recursive-descent parser; user text is never evaluated or
spliced into SQL. Keywords and field prefixes are case-insensitive:

    filter     := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "(" or_expr ")" | comparison
    comparison := field op literal
                | field ["not"] "in" "(" literal ("," literal)* [","] ")"
                | field "is" ["not"] "null"
    field      := (metrics|metric|params|param|tags|tag|attributes|attribute|attr|run) "." name
    name       := [A-Za-z0-9_\\-./:]+ | `quoted` | "quoted"   (\\` or a doubled quote escapes)
    op         := = | == | != | <> | < | <= | > | >= | like | ilike
    literal    := number (also nan, inf, infinity, signed) | 'string' ('' or \\' escapes)

LIKE and ILIKE patterns: `%` matches any run of characters, `_` any one character, and a
backslash makes the next character literal, on SQLite and PostgreSQL alike
(store.query.LIKE_ESCAPE): `params.x LIKE '50\\%'` matches `50%` only. The string
literal reads `\\\\` as one backslash first, so a literal backslash in a pattern is
written `\\\\\\\\` in filter text; a pattern ending in a lone backslash is an error.

Positions in errors are 0-based character offsets into the text.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, NoReturn, TypeAlias

from loopline.errors import InvalidFilter
from loopline.store.query import (
    ATTRIBUTES,
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
MAX_DEPTH = 50
"""Deeper parenthesis nesting is rejected rather than recursed into."""

# fmt: off
_PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric", "metric": "metric", "params": "param", "param": "param",
    "tags": "tag", "tag": "tag", "attributes": "attribute", "attribute": "attribute",
    "attr": "attribute", "run": "attribute",
}
_SYMBOL_OPS: dict[str, Op] = {
    "=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}
# fmt: on
_WORD_OPS: dict[str, Op] = {"like": "like", "ilike": "ilike"}

_FIELD_HINT = "fields are metrics.<name>, params.<name>, tags.<name> or attributes.<name>"
_LIKE_HINT = "in filter text '\\\\' is one backslash of the pattern; '\\\\\\\\' matches one"
_OPERATOR_HINT = "operators are =, !=, <, <=, >, >=, like, ilike, in, not in, is [not] null"

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

_TokenKind: TypeAlias = Literal[
    "word", "number", "string", "name", "op", "(", ")", ",", "eof", "error"
]

# ASCII only: str.isdigit() accepts digits that float() rejects.
_WORD_START = frozenset(string.ascii_letters + "_")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-./:")
_OP_CHARS = frozenset("=!<>")
_PUNCTUATION: dict[str, _TokenKind] = {"(": "(", ")": ")", ",": ","}
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:infinity|inf|nan))"
)
_SPECIAL_NUMBERS = frozenset({"nan", "inf", "infinity"})


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    text: str  # as written in the source
    pos: int
    value: str = ""  # decoded strings and quoted names; the message of an "error" token

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


def parse_filter(text: str | None) -> Condition | None:
    """Parse a run-search filter such as `metrics.auc > 0.9 and params.model = 'xgb'`.

    Returns None for None or blank text, a bare Compare for a single comparison, and
    flattened And/Or otherwise. Raises InvalidFilter (with `position`) on any error.
    """
    if text is None or not text.strip():
        return None
    parser = _Parser(text, "filter")
    condition = parser.or_expr()
    parser.expect_end("'and', 'or'")
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
    parser = _Parser(item, f"order_by item {_clip(item)}")
    field = parser.field()
    direction = parser.accept_word("asc", "desc")
    parser.expect_end("'asc', 'desc'")
    return OrderBy(field, descending=direction == "desc")


class _Parser:
    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        if len(text) > MAX_LENGTH:
            self.fail(MAX_LENGTH, f"longer than {MAX_LENGTH} characters ({len(text)})")
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def fail(self, position: int, detail: str, hint: str | None = None) -> NoReturn:
        message = f"invalid {self.label} at position {position}: {detail}"
        raise InvalidFilter(message, text=self.text, position=position, hint=hint)

    def peek(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind == "error":  # tokenizing stopped here; report it in reading order
            self.fail(token.pos, token.value)
        return token

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "eof":
            self.index += 1
        return token

    def accept_word(self, *words: str) -> str | None:
        token = self.peek()
        if token.kind == "word" and token.text.lower() in words:
            self.index += 1
            return token.text.lower()
        return None

    def expected(self, token: _Token, wanted: str, hint: str | None = None) -> NoReturn:
        self.fail(token.pos, f"expected {wanted}, got {_show(token)}", hint)

    def expect(self, kind: _TokenKind, wanted: str) -> None:
        if self.peek().kind != kind:
            self.expected(self.peek(), wanted)
        self.advance()

    def expect_word(self, word: str, wanted: str) -> None:
        if not self.accept_word(word):
            self.expected(self.peek(), wanted)

    def expect_end(self, alternatives: str) -> None:
        if self.peek().kind != "eof":
            self.expected(self.peek(), f"{alternatives} or the end")

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.accept_word("or"):
            items.append(self.and_expr())
        return _combine(Or, items)

    def and_expr(self) -> Condition:
        items = [self.unary()]
        while self.accept_word("and"):
            items.append(self.unary())
        return _combine(And, items)

    def unary(self) -> Condition:
        token = self.peek()
        if token.kind != "(":
            return self.comparison()
        if self.depth >= MAX_DEPTH:
            self.fail(token.pos, f"parentheses nested deeper than {MAX_DEPTH}")
        self.advance()
        if self.peek().kind == ")":
            self.fail(self.peek().pos, "empty parentheses")
        self.depth += 1
        condition = self.or_expr()
        self.expect(")", "'and', 'or' or ')'")
        self.depth -= 1
        return condition

    def field(self) -> Field:
        token = self.advance()
        prefix, dot, name = token.text.partition(".") if token.kind == "word" else ("", "", "")
        kind = _PREFIXES.get(prefix.lower())
        if kind is None or not dot:
            self.expected(token, "a field such as metrics.auc", hint=_FIELD_HINT)
        name_pos = token.pos + len(prefix) + 1
        if not name:
            quoted = self.peek()
            if quoted.kind != "name" or quoted.pos != token.end:
                self.fail(token.end, f"expected a name after {token.text!r}")
            name, name_pos = self.advance().value, quoted.pos
        if kind == "attribute" and name not in ATTRIBUTES:
            valid = ", ".join(sorted(ATTRIBUTES))
            self.fail(name_pos, f"unknown attribute {_clip(name)}; valid attributes are {valid}")
        return Field(kind, name)

    def comparison(self) -> Compare:
        field = self.field()
        if self.accept_word("is"):
            negated = self.accept_word("not") is not None
            self.expect_word("null", "'null' or 'not null' after 'is'")
            return Compare(field, "is not null" if negated else "is null", None)
        if self.accept_word("not"):
            self.expect_word("in", "'in' after 'not'")
            return Compare(field, "not in", self.value_list(field))
        if self.accept_word("in"):
            return Compare(field, "in", self.value_list(field))
        token = self.advance()
        op = _WORD_OPS.get(token.text.lower()) if token.kind == "word" else None
        op = _SYMBOL_OPS.get(token.text) if token.kind == "op" else op
        if op is None:
            self.expected(token, "a comparison operator", hint=_OPERATOR_HINT)
        value_type = _value_type(field)
        if op not in _ALLOWED_OPS[value_type]:
            hint = _OP_HINTS[value_type].format(plural=field.kind + "s")
            detail = f"operator {token.text!r} cannot be used with {_describe(field)}"
            self.fail(token.pos, detail, hint=hint)
        literal_token = self.peek()
        value = self.literal(field)
        if op in ("like", "ilike"):
            problem = like_pattern_error(str(value))
            if problem is not None:
                self.fail(literal_token.pos, problem, hint=_LIKE_HINT)
        return Compare(field, op, value)

    def value_list(self, field: Field) -> tuple[Scalar, ...]:
        self.expect("(", "'(' to start a list of values")
        values = [self.literal(field)]
        while self.peek().kind == ",":
            self.advance()
            if self.peek().kind == ")":
                break
            values.append(self.literal(field))
        self.expect(")", "',' or ')' in the list of values")
        return tuple(values)

    def literal(self, field: Field) -> Scalar:
        token = self.advance()
        if token.kind == "word" and token.text.lower() in _SPECIAL_NUMBERS:
            token = replace(token, kind="number")
        if token.kind not in ("number", "string"):
            hint = "values are numbers or single-quoted strings such as 'xgb'"
            if token.kind == "name":
                hint = "double quotes and backticks quote field names; quote values with '...'"
            self.expected(token, "a number or a quoted string", hint)
        return self.convert(field, token)

    def convert(self, field: Field, token: _Token) -> Scalar:
        """The literal's value as the field's type compares it, or an error at the literal."""
        value_type = _value_type(field)
        if token.kind == "number" and value_type in ("number", "time"):
            number = float(token.text)
            if value_type == "time" and not math.isfinite(number):
                self.fail(token.pos, f"{_describe(field)} needs a finite time, got {token.text}")
            return number
        if value_type == "number":
            detail = f"{_describe(field)} compares to numbers, got {_show(token)}"
            self.fail(token.pos, detail, hint="metrics are numbers, e.g. metrics.auc > 0.9")
        # Strings, and numbers as written: params.max_depth = 6 compares with '6'.
        text = token.value if token.kind == "string" else token.text
        if value_type == "time" and not _is_iso_time(text):
            detail = f"{_describe(field)} takes epoch ms or an ISO-8601 time, got {_show(token)}"
            self.fail(token.pos, detail, hint="e.g. attributes.start_time > '2024-05-01T12:00'")
        if value_type == "boolean" and text.lower() not in ("true", "false"):
            self.fail(token.pos, f"{_describe(field)} is 'true' or 'false', got {_show(token)}")
        return text


def _combine(kind: type[And] | type[Or], items: list[Condition]) -> Condition:
    if len(items) == 1:
        return items[0]
    flat: list[Condition] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


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
    return f"{field.kind}s.{_clip(field.key, quote=False)}"


def _clip(text: str, *, quote: bool = True, limit: int = 40) -> str:
    """A one-line, bounded rendering of user text for error messages."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    shown = repr(text)
    return shown if quote else shown[1:-1]


def _show(token: _Token) -> str:
    if token.kind == "string":
        return f"the string {_clip(token.value)}"
    return "the end of the input" if token.kind == "eof" else _clip(token.text)


# Tokenizer ---------------------------------------------------------------------------


def _tokenize(text: str) -> list[_Token]:
    """All tokens up to EOF, or up to and including the first "error" token."""
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            tokens.append(_Token("eof", "", pos))
            return tokens
        token = _next_token(text, pos)
        tokens.append(token)
        if token.kind == "error":
            return tokens
        pos = token.end


def _next_token(text: str, pos: int) -> _Token:
    char = text[pos]
    if char in _PUNCTUATION:
        return _Token(_PUNCTUATION[char], char, pos)
    if char in _OP_CHARS:  # a whole run, so that '>>' is reported as one bad operator
        return _Token("op", text[pos : _run_end(text, pos, _OP_CHARS)], pos)
    if char == "'":
        return _quoted(text, pos, "string")
    if char in '`"':
        return _quoted(text, pos, "name")
    if char in _WORD_START:
        return _Token("word", text[pos : _run_end(text, pos, _NAME_CHARS)], pos)
    return _number(text, pos)


def _run_end(text: str, pos: int, chars: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _number(text: str, pos: int) -> _Token:
    match = _NUMBER.match(text, pos)
    if match is None:
        return _error(pos, f"unexpected character {text[pos]!r}")
    end = match.end()
    if end < len(text) and text[end] in _NAME_CHARS:  # 1.2.3, 12abc, -info
        return _error(
            pos, f"malformed number {_clip(text[pos : _run_end(text, end, _NAME_CHARS)])}"
        )
    return _Token("number", match.group(), pos)


def _quoted(text: str, start: int, kind: _TokenKind) -> _Token:
    """A string or quoted name: a doubled quote or backslash-quote is a quote, \\\\ a backslash."""
    quote = text[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        char, after = text[pos], text[pos + 1 : pos + 2]
        if (char == "\\" and after in (quote, "\\")) or (char == quote == after):
            chars.append(after)
            pos += 2
        elif char == quote:
            if kind == "name" and not chars:
                return _error(start, "empty quoted name")
            return _Token(kind, text[start : pos + 1], start, "".join(chars))
        else:
            chars.append(char)
            pos += 1
    return _error(start, "unterminated string" if kind == "string" else "unterminated quoted name")


def _error(pos: int, message: str) -> _Token:
    return _Token("error", "", pos, message)
