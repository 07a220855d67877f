"""Promotion gate rules: `metrics.roc_auc >= 0.9`, parsed and checked against evaluation facts.

A rule is one comparison of loopline's condition language (loopline.expr), a path
compared with a number, with an optional `#` comment:

    rule      := path operator number [comment]
    path      := segment ("." segment)*      e.g. slices.`seg=gold`.auc (backticks quote)
    operator  := ">=" | "<=" | ">" | "<" | "==" (or "=") | "!=" (or "<>")
    number    := as in loopline.expr, with inf and infinity; NaN is refused

A double-quoted segment (`slices."seg=gold".auc`) still works, with a DeprecationWarning.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from loopline import expr
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

_OPERATOR_LIST = ">=, <=, >, <, ==, !="
_EXAMPLE = "e.g. 'metrics.roc_auc >= 0.9'"
_SHOWN = 200  # characters of a rule quoted in an error message


def _render(text: str, position: int, detail: str) -> str:
    """The message, then the rule and a caret under `position` on the following lines."""
    shown = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    line = "".join(" " if char.isspace() else char for char in shown)
    caret = " " * min(position, len(line)) + "^"
    return f"gate rule {shown!r}: {detail} at position {position}\n    {line}\n    {caret}"


RULE = expr.Dialect(
    "gate rule",
    double_quotes="name",
    subject="a path such as metrics.roc_auc",
    operator=f"an operator ({_OPERATOR_LIST})",
    operator_list=_OPERATOR_LIST,
    value="a number",
    literal="a number",
    end=None,
    finish="the end of the rule or a # comment",
    empty="empty rule: expected a path, an operator and a number",
    combine=False,
    render=_render,
)
"""How gate rules word their errors; double quotes there once quoted path segments."""


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
        return expr.render_name(self.path)


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
    parsed = expr.parse(text, RULE)
    rule = _rule(text, parsed.condition)
    parsed.warn()
    return rule


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


# --- parsing --------------------------------------------------------------------------------


def _rule(text: str, node: expr.Condition) -> Rule:
    """The parsed comparison as a Rule: a path, one of OPERATORS and a number."""

    def fail(position: int, detail: str) -> NoReturn:
        raise RULE.error(text, position, detail)

    assert isinstance(node, expr.Compare)  # RULE reads one comparison, and no bare name
    path = node.left
    if not isinstance(path, expr.Name):
        fail(path.pos, f"expected {RULE.subject}, got {expr.show(path)}")
    for part, start in zip(path.parts, path.starts, strict=True):
        if not part:
            fail(start, f"expected a name after {expr.clip(text[path.pos : start])}")
    op = node.op  # "=" and "<>" were read as "==" and "!="
    if op not in OPERATORS or not isinstance(node.right, expr.Literal | expr.Name):
        fail(
            node.pos, f"operator {node.written!r} cannot be used in a gate rule ({_OPERATOR_LIST})"
        )
    threshold = node.right
    if not isinstance(threshold, expr.Literal) or not isinstance(threshold.value, float):
        fail(threshold.pos, f"expected a number, got {expr.show(threshold)}")
    if math.isnan(threshold.value):
        fail(threshold.pos, "a threshold cannot be NaN")
    return Rule(text.strip(), path.parts, op, threshold.value)
