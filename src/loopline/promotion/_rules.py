"""Promotion gate rules: `metrics.roc_auc >= 0.9`, parsed and checked against evaluation facts.

The grammar, one rule per string (whitespace is allowed between the three parts):

    rule      := path operator number [comment]
    path      := segment ("." segment)*
    segment   := name | quoted
    name      := [A-Za-z0-9_-]+
    quoted    := '"' chars '"'        a backslash escapes '"' and '\\'; e.g. slices."seg=gold".auc
    operator  := ">=" | "<=" | ">" | "<" | "==" | "!="
    number    := [+-]? (digits ["." digits] | "." digits) [("e"|"E") [+-] digits]
               | [+-]? ("inf" | "infinity")            (any case; NaN is refused)
    comment   := "#" anything

Paths are resolved in the facts (the evaluation report) by nested lookup, with three
shortcuts: `slices.min.X` reads facts["slices_min"][X], `slices.max.X` reads
facts["slices_max"][X] and `slices.<name>.X` reads facts["slices"][<name>]["metrics"][X]
(so `min` and `max` are not slice names here); `compare.<alias>.X` is plain nested lookup
of the candidate-minus-reference deltas in facts["compare"][<alias>][X].

Gates fail closed: a missing value, a value that is not a number, or NaN fails the rule.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from loopline.errors import InvalidInput

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
"""The comparison operators a rule may use, and what they compute."""

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_OP_CHARS = frozenset("<>=!")
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:infinity|inf|nan))"
)
_OPERATOR_LIST = ">=, <=, >, <, ==, !="
_EXAMPLE = "e.g. 'metrics.roc_auc >= 0.9'"
_SHOWN = 200  # characters of a rule quoted in an error message


@dataclass(frozen=True)
class Rule:
    """One parsed gate rule: the value at `path` compared by `op` with `threshold`."""

    text: str
    path: tuple[str, ...]
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise InvalidInput(f"gate rule operator must be one of {_OPERATOR_LIST}: {self.op!r}")
        if not self.path or not all(isinstance(p, str) and p for p in self.path):
            raise InvalidInput(f"gate rule path must be non-empty names, got {self.path!r}")
        if math.isnan(self.threshold):
            raise InvalidInput(f"gate rule {self.text!r} has a NaN threshold")

    @property
    def path_text(self) -> str:
        """The path as a rule writes it, quoting segments that are not plain names."""
        return ".".join(_quote_segment(segment) for segment in self.path)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule: `actual` is None when no usable value was found."""

    rule: str
    passed: bool
    actual: float | None
    threshold: float
    op: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; non-finite numbers become None (the reason keeps them as text)."""
        return {
            "rule": self.rule,
            "passed": self.passed,
            "actual": _finite_or_none(self.actual),
            "threshold": _finite_or_none(self.threshold),
            "op": self.op,
            "reason": self.reason,
        }


def parse_rule(text: str) -> Rule:
    """Parse one gate rule such as `slices.min.roc_auc >= 0.85  # worst slice`.

    Raises InvalidInput naming the 0-based position of the first error, with the rule and
    a caret under that position on the following lines.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"a gate rule must be a string ({_EXAMPLE}), got {type(text).__name__}")
    return _Parser(text).rule()


def evaluate_rules(rules: Iterable[Rule | str], facts: Mapping[str, Any]) -> list[RuleResult]:
    """Check each rule (parsed first if given as text) against the evaluation `facts`.

    A single rule may be passed as a lone string or Rule.
    """
    if isinstance(rules, str | Rule):
        rules = [rules]
    if not isinstance(facts, Mapping):
        raise InvalidInput(f"evaluation facts must be a mapping, got {type(facts).__name__}")
    return [_evaluate(r if isinstance(r, Rule) else parse_rule(r), facts) for r in rules]


# --- evaluation -----------------------------------------------------------------------------

_MISSING = object()


def _evaluate(rule: Rule, facts: Mapping[str, Any]) -> RuleResult:
    name = rule.path_text
    value = _lookup(facts, rule.path)

    def failed(reason: str, actual: float | None = None) -> RuleResult:
        return RuleResult(rule.text, False, actual, rule.threshold, rule.op, reason)

    if value is _MISSING or value is None:
        return failed(f"no value for {name!r} in the evaluation")
    if isinstance(value, Mapping):
        return failed(f"{name!r} holds a group of values, not a number; name one of them")
    if not isinstance(value, numbers.Real):
        return failed(f"value for {name!r} is not a number ({type(value).__name__})")
    try:
        actual = float(value)
    except (OverflowError, ValueError):
        return failed(f"value for {name!r} does not fit a float")
    if math.isnan(actual):
        return failed(f"value for {name!r} is NaN")
    shown, bound = _format(actual), _format(rule.threshold)
    if OPERATORS[rule.op](actual, rule.threshold):
        reason = f"{shown} {rule.op} {bound}"
        return RuleResult(rule.text, True, actual, rule.threshold, rule.op, reason)
    return failed(f"{shown} is not {rule.op} {bound}", actual)


def _lookup(facts: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`, with the `slices.*` shortcuts; `_MISSING` if any step is absent."""
    node: Any = facts
    keys: tuple[str, ...] = path
    if path[0] == "slices" and len(path) >= 3:
        if path[1] in ("min", "max"):
            node, keys = facts.get(f"slices_{path[1]}", _MISSING), path[2:]
        else:
            keys = ("slices", path[1], "metrics", *path[2:])
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _format(value: float) -> str:
    """A number as written in a rule: whole numbers without '.0', others exactly (repr)."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _quote_segment(segment: str) -> str:
    if segment and all(char in _NAME_CHARS for char in segment):
        return segment
    return '"' + segment.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- parsing --------------------------------------------------------------------------------


class _Parser:
    """A scanner over one rule; `last_end` is where the last thing read ended."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.last_end = 0

    def rule(self) -> Rule:
        self.skip_space()
        if self.at_end():
            self.fail(0, "empty rule: expected a path, an operator and a number")
        path = self.path()
        op = self.operator()
        threshold = self.number()
        self.skip_space()
        if not self.at_end():
            self.fail(self.pos, f"expected the end of the rule or a # comment, got {self.shown()}")
        return Rule(self.text.strip(), path, op, threshold)

    # scanning helpers

    def fail(self, position: int, detail: str) -> NoReturn:
        shown = self.text if len(self.text) <= _SHOWN else self.text[: _SHOWN - 3] + "..."
        line = "".join(" " if char.isspace() else char for char in shown)
        caret = " " * min(position, len(line)) + "^"
        message = f"gate rule {shown!r}: {detail} at position {position}"
        raise InvalidInput(f"{message}\n    {line}\n    {caret}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        """True at the end of the text or at a comment."""
        return self.pos >= len(self.text) or self.text[self.pos] == "#"

    def where(self) -> int:
        """Where a missing part is reported: the next character, or the end of the rule."""
        return self.last_end if self.at_end() else self.pos

    def shown(self) -> str:
        """What stands at the current position, for 'got ...' in messages."""
        end = self.pos
        while end < len(self.text) and not self.text[end].isspace() and end - self.pos < 20:
            end += 1
        return repr(self.text[self.pos : max(end, self.pos + 1)])

    def missing(self, wanted: str) -> NoReturn:
        got = "" if self.at_end() else f", got {self.shown()}"
        self.fail(self.where(), f"expected {wanted}{got}")

    # grammar

    def path(self) -> tuple[str, ...]:
        segments = [self.segment()]
        while self.pos < len(self.text) and self.text[self.pos] == ".":
            self.pos += 1
            self.last_end = self.pos
            segments.append(self.segment())
        char = self.text[self.pos] if self.pos < len(self.text) else ""
        if char and not char.isspace() and char not in _OP_CHARS and char != "#":
            self.fail(self.pos, f"unexpected character {char!r} in the path")
        return tuple(segments)

    def segment(self) -> str:
        start = self.pos
        if start < len(self.text) and self.text[start] == '"':
            return self.quoted()
        while self.pos < len(self.text) and self.text[self.pos] in _NAME_CHARS:
            self.pos += 1
        if self.pos == start:
            self.missing("a name (letters, digits, '_', '-') or a double-quoted name")
        self.last_end = self.pos
        return self.text[start : self.pos]

    def quoted(self) -> str:
        start, chars, closed = self.pos, [], False
        self.pos += 1
        while self.pos < len(self.text) and not closed:
            char = self.text[self.pos]
            if char == "\\" and self.text[self.pos + 1 : self.pos + 2] in ('"', "\\"):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
            else:
                closed = char == '"'
                chars.extend(() if closed else (char,))
                self.pos += 1
        if not closed:
            self.fail(start, "unterminated quoted name")
        if not chars:
            self.fail(start, "empty quoted name")
        self.last_end = self.pos
        return "".join(chars)

    def operator(self) -> str:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _OP_CHARS:
            self.pos += 1
        op = self.text[start : self.pos]
        if not op:
            self.missing(f"an operator ({_OPERATOR_LIST})")
        if op not in OPERATORS:
            equality = "; equality is '=='" if op == "=" else ""
            self.fail(start, f"unknown operator {op!r} (operators are {_OPERATOR_LIST}{equality})")
        self.last_end = self.pos
        return op

    def number(self) -> float:
        self.skip_space()
        match = None if self.at_end() else _NUMBER.match(self.text, self.pos)
        if match is None:
            self.missing("a number")
        start, end = self.pos, match.end()
        if end < len(self.text) and (self.text[end] in _NAME_CHARS or self.text[end] == "."):
            while end < len(self.text) and not self.text[end].isspace():
                end += 1
            self.fail(start, f"malformed number {self.text[start:end]!r}")
        value = float(match.group())
        if math.isnan(value):
            self.fail(start, "a threshold cannot be NaN")
        self.pos = self.last_end = end
        return value
