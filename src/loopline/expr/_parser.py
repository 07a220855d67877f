"""The parser of the one condition language: runs filters, slice conditions and gate rules.

One tokenizer and one recursive-descent parser turn text into a tree of frozen dataclasses;
user text is never evaluated. Each area gives the tree its meaning: tracking turns it into
the query the store compiles to SQL, evaluation into a boolean mask over a frame, promotion
checks it against a mapping of facts. The grammar (keywords are case-insensitive):

    condition  := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand op operand
                | operand ["not"] "in" "(" literal ("," literal)* [","] ")"
                | operand "is" ["not"] "null"
                | name                                 (where the area allows a bare name)
    operand    := name | literal
    name       := segment ("." segment)*               (no spaces around the dots)
    segment    := [A-Za-z_][A-Za-z0-9_\\-/:]* | `quoted`  (after a dot a segment may start
                                                          with a digit or '-')
    literal    := number | 'string'
    number     := [+-]? digits ["." digits] [e [+-] digits] | [+-]? (nan | inf | infinity)
    op         := = | == | != | <> | < | <= | > | >= | like | ilike

Quoting: strings in single quotes, names bare or in backticks. Inside either, a doubled
quote or a backslash before the quote is the quote, and `\\\\` is one backslash. Double
quotes kept their old meaning per area (a name in filters and gate rules, a string in
slices), with a DeprecationWarning naming the new spelling. `#` starts a comment that runs
to the end of the text. Positions in errors are 0-based character offsets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NoReturn

from loopline.expr._tokens import Token, Tokenizer
from loopline.expr.dialect import Dialect
from loopline.expr.tree import (
    KEYWORDS,
    MAX_DEPTH,
    SPECIAL_NUMBERS,
    SYMBOL_OPS,
    And,
    Compare,
    Condition,
    Literal,
    Name,
    Not,
    Op,
    Operand,
    Or,
    Truth,
    clip,
    quote_string,
    render_name,
)


@dataclass(frozen=True)
class Parsed:
    """A parsed condition and the deprecated spellings it used (see `warn`)."""

    condition: Condition
    deprecated: tuple[str, ...] = ()

    def warn(self, stacklevel: int = 2) -> None:
        """One DeprecationWarning per old spelling; call it once the area accepted the tree.

        `stacklevel` counts from the function that calls `warn` (1), as warnings.warn does.
        """
        _warn(self.deprecated, stacklevel)


@dataclass(frozen=True)
class SortKey:
    """An order-by item: what to sort by, and whether descending."""

    key: Operand
    descending: bool = False
    deprecated: tuple[str, ...] = ()

    def warn(self, stacklevel: int = 2) -> None:
        """As Parsed.warn."""
        _warn(self.deprecated, stacklevel)


def _warn(messages: tuple[str, ...], stacklevel: int) -> None:
    for message in messages:
        warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 2)


def parse(text: str, dialect: Dialect) -> Parsed:
    """Parse `text` into a condition; raises InvalidFilter (with `position`) on any error."""
    parser = _Parser(text, dialect)
    if parser.peek().kind == "eof":
        parser.fail(0, dialect.empty)
    condition = parser.or_expr() if dialect.combine else parser.comparison()
    parser.expect_end()
    return Parsed(condition, tuple(parser.deprecated))


def parse_sort_key(text: str, dialect: Dialect) -> SortKey:
    """Parse `operand [asc|desc]` (an order-by item)."""
    parser = _Parser(text, dialect)
    operand = parser.operand(dialect.subject, dialect.subject_hint)
    direction = parser.accept_word("asc", "desc")
    if parser.peek().kind != "eof":
        parser.expected(parser.peek(), "'asc', 'desc' or the end")
    return SortKey(operand, direction == "desc", tuple(parser.deprecated))


class _Parser:
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        if len(text) > dialect.max_length:
            limit = dialect.max_length
            self.fail(limit, f"longer than {limit} characters ({len(text)})")
        self.tokens = Tokenizer(text, dialect).tokens()
        self.index = 0
        self.depth = 0
        self.deprecated: list[str] = []

    def fail(self, position: int, detail: str, hint: str | None = None) -> NoReturn:
        raise self.dialect.error(self.text, position, detail, hint)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind not in ("eof", "error"):
            self.index += 1
        return token

    def is_word(self, token: Token, *words: str) -> bool:
        return token.kind == "name" and token.bare and token.text.lower() in words

    def accept_word(self, *words: str) -> str | None:
        token = self.peek()
        if self.is_word(token, *words):
            self.index += 1
            return token.text.lower()
        return None

    def expected(self, token: Token, wanted: str, hint: str | None = None) -> NoReturn:
        if token.kind == "error":  # tokenizing stopped here: say why (and what was wanted)
            stray = token.value.startswith("unexpected character")
            self.fail(
                token.pos, f"{token.value}; expected {wanted}" if stray else token.value, hint
            )
        if token.kind == "eof" and self.dialect.end is None:
            self.fail(token.pos, f"expected {wanted}", hint)
        self.fail(token.pos, f"expected {wanted}, got {self.shown(token)}", hint)

    def shown(self, token: Token) -> str:
        if token.kind == "string":
            return f"the string {clip(token.value)}"
        return str(self.dialect.end) if token.kind == "eof" else clip(token.text)

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "eof":
            joins = "'and', 'or' or " if self.dialect.combine else ""
            self.expected(token, f"{joins}{self.dialect.finish}")

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.accept_word("or"):
            items.append(self.and_expr())
        return _combine(Or, items)

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.accept_word("and"):
            items.append(self.not_expr())
        return _combine(And, items)

    def not_expr(self) -> Condition:
        token = self.peek()
        opens = token.kind == "(" or self.is_word(token, "not")
        if not opens:
            return self.comparison()
        if self.depth >= MAX_DEPTH:
            self.fail(token.pos, f"nested deeper than {MAX_DEPTH}")
        self.depth += 1
        self.advance()
        if token.kind == "(":
            if self.peek().kind == ")":
                self.fail(self.peek().pos, "empty parentheses")
            condition = self.or_expr()
            if self.peek().kind != ")":
                self.expected(self.peek(), "'and', 'or' or ')'")
            self.advance()
        else:
            condition = Not(self.not_expr(), token.pos)
        self.depth -= 1
        return condition

    def comparison(self) -> Condition:
        left = self.operand(self.dialect.subject, self.dialect.subject_hint)
        after = self.peek()
        ends = after.kind in (")", "eof") or self.is_word(after, "and", "or")
        if ends and self.dialect.bare_names and isinstance(left, Name):
            return Truth(left, after.pos)
        if self.accept_word("is"):
            negated = self.accept_word("not") is not None
            if not self.accept_word("null"):
                self.expected(self.peek(), "'null' or 'not null' after 'is'")
            return Compare(left, "is not null" if negated else "is null", None, after.pos, "is")
        if self.accept_word("not"):
            if not self.accept_word("in"):
                self.expected(self.peek(), "'in' after 'not'")
            return Compare(left, "not in", self.literals(), after.pos, "not in")
        if self.accept_word("in"):
            return Compare(left, "in", self.literals(), after.pos, "in")
        op = self.operator()
        right = self.operand(self.dialect.value)
        return Compare(left, op, right, after.pos, after.text)

    def operator(self) -> Op:  # noqa: RET503 (the last call raises)
        token = self.peek()
        if self.is_word(token, "like", "ilike"):
            self.advance()
            return "like" if token.text.lower() == "like" else "ilike"
        if token.kind == "op" and token.text in SYMBOL_OPS:
            self.advance()
            return SYMBOL_OPS[token.text]
        if token.kind == "op" and self.dialect.operator_list is not None:
            operators = self.dialect.operator_list
            self.fail(token.pos, f"unknown operator {token.text!r} (operators are {operators})")
        self.expected(token, self.dialect.operator, self.dialect.operator_hint)

    def operand(self, wanted: str, hint: str | None = None) -> Operand:
        token = self.peek()
        if token.kind == "number":
            self.advance()
            return Literal(float(token.text), token.pos, token.text)
        if token.kind == "string":
            self.advance()
            if token.double:
                self.deprecated.append(_deprecated_string(token))
            return Literal(token.value, token.pos, token.text)
        if token.kind != "name":
            self.expected(token, wanted, hint)
        if token.bare and token.text.lower() in KEYWORDS:
            self.fail(
                token.pos,
                f"expected {wanted}, got {clip(token.text)}{self.dialect.keyword_note}",
                hint,
            )
        if token.parts[1:] == ("",):  # "metrics." and no name after the dot
            self.fail(token.starts[1], f"expected a name after {clip(token.text)}")
        self.advance()
        if token.bare and token.text.lower() in SPECIAL_NUMBERS:
            return Literal(float(token.text), token.pos, token.text)
        if token.double:
            self.deprecated.append(_deprecated_name(token))
        return Name(token.parts, token.pos, token.text, token.starts)

    def literals(self) -> tuple[Literal, ...]:
        if self.peek().kind != "(":
            self.expected(self.peek(), "'(' to start a list of values")
        self.advance()
        items = [self.literal()]
        while self.peek().kind == ",":
            self.advance()
            if self.peek().kind == ")":
                break
            items.append(self.literal())
        if self.peek().kind != ")":
            self.expected(self.peek(), "',' or ')' in the list of values")
        self.advance()
        return tuple(items)

    def literal(self) -> Literal:
        token = self.peek()
        special = self.is_word(token, *SPECIAL_NUMBERS)
        if token.kind not in ("number", "string") and not special:
            self.expected(token, self.dialect.literal)
        operand = self.operand(self.dialect.literal)
        assert isinstance(operand, Literal)
        return operand


def _combine(kind: type[And] | type[Or], items: list[Condition]) -> Condition:
    """One item as is; several as one And/Or, flattening nested groups of the same kind."""
    if len(items) == 1:
        return items[0]
    flat: list[Condition] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def _deprecated_name(token: Token) -> str:
    return (
        f"double quotes around a name are deprecated ({clip(token.text)}): write "
        f"{render_name(token.parts)}; names are bare or in backticks, strings in single quotes"
    )


def _deprecated_string(token: Token) -> str:
    return (
        f"double-quoted strings are deprecated ({clip(token.text)}): write "
        f"{quote_string(token.value)}; strings are in single quotes, names bare or in backticks"
    )
