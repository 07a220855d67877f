"""The condition tree: what the parser builds and each area gives a meaning to.

Positions and the text as written are kept for error messages but take no part in
equality, so two conditions that say the same thing compare equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal as TypingLiteral
from typing import TypeAlias

Op: TypeAlias = TypingLiteral[
    "==", "!=", "<", "<=", ">", ">=", "like", "ilike", "in", "not in", "is null", "is not null"
]
SYMBOL_OPS: dict[str, Op] = {
    "=": "==", "==": "==", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}  # fmt: skip
"""Each operator as written, and the one it means."""
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "like", "ilike"})
SPECIAL_NUMBERS = frozenset({"nan", "inf", "infinity"})
MAX_DEPTH = 50
"""Deeper nesting of parentheses and `not` is refused rather than recursed into."""


# --- the tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    """A name such as `metrics.auc` (parts ("metrics", "auc")) or a backquoted `my col`."""

    parts: tuple[str, ...]
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)  # as written
    starts: tuple[int, ...] = field(default=(), compare=False)  # where each part begins


@dataclass(frozen=True)
class Literal:
    """A number (a float) or a string (a str) as the text wrote it."""

    value: float | str
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)

    def __repr__(self) -> str:  # NaN compares unequal to itself; its repr does not
        return f"Literal({self.value!r})"


Operand: TypeAlias = Name | Literal


@dataclass(frozen=True)
class Compare:
    """`left op right`; `right` is a tuple for in / not in and None for the null tests."""

    left: Operand
    op: Op
    right: Operand | tuple[Literal, ...] | None
    pos: int = field(default=0, compare=False)  # where the operator is
    written: str = field(default="", compare=False)  # the operator as written


@dataclass(frozen=True)
class Truth:
    """A name standing alone as a condition (a boolean column); `pos` is what follows it."""

    name: Name
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    item: Condition
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


Condition: TypeAlias = Compare | Truth | Not | And | Or
_FIRST_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_LATER_BARE = re.compile(r"[A-Za-z0-9_\-]+")


def quote_name(part: str) -> str:
    """A name part in backticks, escaping backticks and backslashes."""
    return "`" + part.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """A string literal in single quotes, escaping quotes and backslashes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_name(parts: tuple[str, ...]) -> str:
    """Parts as a name that parses back to them, quoting only parts that need it."""
    if len(parts) == 1 and parts[0].lower() in KEYWORDS | SPECIAL_NUMBERS:
        return quote_name(parts[0])
    shown = []
    for index, part in enumerate(parts):
        bare = _FIRST_BARE if index == 0 else _LATER_BARE
        shown.append(part if bare.fullmatch(part) else quote_name(part))
    return ".".join(shown)


def show(operand: Operand | Literal) -> str:
    """An operand for 'got ...' in messages: `the string 'x'`, `'1e3'`, `'metrics.auc'`."""
    if isinstance(operand, Literal) and isinstance(operand.value, str):
        return f"the string {clip(operand.value)}"
    return clip(operand.text)


def clip(text: str, *, quote: bool = True, limit: int = 40) -> str:
    """A one-line, bounded rendering of user text for error messages."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    shown = repr(text)
    return shown if quote else shown[1:-1]
