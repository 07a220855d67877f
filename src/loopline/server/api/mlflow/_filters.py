"""MLflow's search filter and order-by strings, parsed into clauses.

MLflow's grammar (mlflow/utils/search_utils.py) is a conjunction of comparisons,
`identifier op value [AND ...]`: an identifier is `[prefix.]key` (prefixes metric(s),
param(s)/parameter(s), tag(s), attribute(s)/attr/run, dataset(s); no prefix means an
attribute), a key is bare (`metrics.rmse`, `tags.mlflow.runName`) or quoted with
backticks or double quotes (`tags."my key"`); a value is a number, a string in single or
double quotes, or a parenthesised list of strings for IN / NOT IN. OR and NOT are not
part of it. Operators: = != < <= > >= LIKE ILIKE IN, NOT IN, IS NULL, IS NOT NULL.

Runs searches turn the clauses into loopline's query model (`runs_condition`), which the
store compiles to SQL; experiments and registry searches evaluate them in Python over a
few hundred records (`matches`). Anything loopline cannot mean refuses with
INVALID_PARAMETER_VALUE (a `MlflowFilterError`) rather than being dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from loopline.errors import InvalidInput
from loopline.store.query import And, Compare, Condition, Field, Op, OrderBy

Kind: TypeAlias = Literal["metric", "param", "tag", "attribute", "dataset"]
Value: TypeAlias = float | str | tuple[str, ...] | None

MAX_FILTER = 10_000  # characters; longer filters are refused before tokenizing

_PREFIXES: dict[str, Kind] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_COMPARISONS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][\w]*")
_KEY = re.compile(r"[\w.:/-]+")


class MlflowFilterError(InvalidInput):
    """A filter or order-by MLflow would refuse, or one loopline cannot translate."""


@dataclass(frozen=True)
class Clause:
    """One comparison: `kind.key op value` (value None for IS [NOT] NULL)."""

    kind: Kind
    key: str
    op: str  # upper case: =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL
    value: Value


@dataclass(frozen=True)
class SortKey:
    kind: Kind
    key: str
    descending: bool


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow filter string (empty for None or blank text)."""
    if text is None or not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise MlflowFilterError(f"filter is {len(text)} characters; the limit is {MAX_FILTER}")
    reader = _Reader(text)
    clauses = [reader.clause()]
    while not reader.at_end():
        word = reader.word()
        if word.upper() != "AND":
            shown = word or reader.rest()[:20]
            raise MlflowFilterError(
                f"invalid filter {text!r}: expected AND at {shown!r} (OR and NOT are not "
                "supported by MLflow's search grammar)"
            )
        clauses.append(reader.clause())
    return clauses


def parse_order_by(items: list[str]) -> list[SortKey]:
    """MLflow order-by items: `identifier [ASC|DESC]`."""
    keys = []
    for item in items:
        reader = _Reader(item)
        kind, key = reader.identifier()
        direction = reader.word().upper() if not reader.at_end() else "ASC"
        if direction not in ("ASC", "DESC") or not reader.at_end():
            raise MlflowFilterError(
                f"invalid order_by clause {item!r}: expected an identifier and ASC or DESC"
            )
        keys.append(SortKey(kind, key, direction == "DESC"))
    return keys


# -- runs: to loopline's query model ------------------------------------------------------

# MLflow's run attributes and the loopline attribute each one is.
_RUN_ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "run name": "name",
    "status": "status",
    "user_id": "user",
    "start_time": "start_time",
    "created": "start_time",
    "end_time": "end_time",
    "experiment_id": "experiment_id",
}
# MLflow system tags that loopline keeps as run attributes (see the package docstring).
RUN_TAG_ATTRIBUTES = {
    "mlflow.runName": "name",
    "mlflow.user": "user",
    "mlflow.parentRunId": "parent_id",
}
_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"})
_ATTRIBUTE_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})


def runs_condition(clauses: list[Clause]) -> Condition | None:
    """The clauses as loopline's run-search condition (an AND of comparisons)."""
    compares = tuple(_run_compare(clause) for clause in clauses)
    if not compares:
        return None
    return compares[0] if len(compares) == 1 else And(compares)


def runs_order(keys: list[SortKey]) -> tuple[OrderBy, ...]:
    return tuple(OrderBy(_run_field(key.kind, key.key), key.descending) for key in keys)


def _run_field(kind: Kind, key: str) -> Field:
    if kind == "dataset":
        raise MlflowFilterError("searching runs by dataset is not supported by this server")
    if kind == "attribute":
        if key not in _RUN_ATTRIBUTES:
            valid = ", ".join(sorted(_RUN_ATTRIBUTES))
            raise MlflowFilterError(f"invalid attribute key {key!r}; valid keys are {valid}")
        return Field("attribute", _RUN_ATTRIBUTES[key])
    if kind == "tag" and key in RUN_TAG_ATTRIBUTES:
        return Field("attribute", RUN_TAG_ATTRIBUTES[key])
    return Field(kind, key)


def _run_compare(clause: Clause) -> Compare:
    field = _run_field(clause.kind, clause.key)
    numeric = clause.kind == "metric" or field.key in ("start_time", "end_time")
    if clause.kind == "attribute" and not numeric:
        allowed = _ATTRIBUTE_OPS
    else:
        allowed = _NUMERIC_OPS if numeric else _STRING_OPS
    if clause.op not in allowed:
        raise MlflowFilterError(
            f"invalid comparator {clause.op!r} for {clause.kind} {clause.key!r}; "
            f"use one of {', '.join(sorted(allowed))}"
        )
    value = clause.value
    if numeric and not isinstance(value, float):
        raise MlflowFilterError(
            f"expected a number for {clause.kind} {clause.key!r}, got {value!r}"
        )
    if not numeric and isinstance(value, float):
        raise MlflowFilterError(
            f"expected a quoted string for {clause.kind} {clause.key!r}, got {value!r}"
        )
    if isinstance(value, tuple) and field.key != "id":
        raise MlflowFilterError("only attributes.run_id can be compared with a list")
    op: Op = clause.op.lower()  # type: ignore[assignment]  # the checks above bound it
    return Compare(field, op, value)


# -- experiments and the registry: evaluated in Python -----------------------------------

Record: TypeAlias = Mapping[str, "float | str | None"]


def matches(
    clauses: list[Clause], attributes: Record, tags: Mapping[str, str], numeric: frozenset[str]
) -> bool:
    """Whether a record (its attributes and tags) meets every clause.

    The caller has checked the clauses with `check_clauses`.
    """
    return all(_holds(clause, attributes, tags, numeric) for clause in clauses)


def check_clauses(
    clauses: list[Clause], attributes: frozenset[str], numeric: frozenset[str]
) -> None:
    """Refuse clauses on unknown attributes, with the wrong operator or value type."""
    for clause in clauses:
        if clause.kind not in ("attribute", "tag"):
            raise MlflowFilterError(
                f"invalid filter entity {clause.kind!r}; use a name or tags.<key>"
            )
        if clause.kind == "attribute" and clause.key not in attributes:
            valid = ", ".join(sorted(attributes))
            raise MlflowFilterError(f"invalid attribute key {clause.key!r}; valid keys are {valid}")
        is_number = clause.kind == "attribute" and clause.key in numeric
        allowed = _NUMERIC_OPS if is_number else _ATTRIBUTE_OPS | _STRING_OPS
        if clause.op not in allowed:
            raise MlflowFilterError(f"invalid comparator {clause.op!r} for {clause.key!r}")
        if is_number != isinstance(clause.value, float):
            wanted = "a number" if is_number else "a quoted string"
            raise MlflowFilterError(f"expected {wanted} for {clause.key!r}, got {clause.value!r}")


def _holds(
    clause: Clause, attributes: Record, tags: Mapping[str, str], numeric: frozenset[str]
) -> bool:
    found = attributes.get(clause.key) if clause.kind == "attribute" else tags.get(clause.key)
    if clause.op == "IS NULL":
        return found is None
    if clause.op == "IS NOT NULL":
        return found is not None
    if found is None:
        # MLflow's registry counts a missing tag as unequal: its client excludes prompts
        # from every model search with `tags.`mlflow.prompt.is_prompt` != 'true'`.
        return clause.op in ("!=", "NOT IN")
    if clause.key in numeric and clause.kind == "attribute":
        assert isinstance(clause.value, float)
        return _NUMBER_TESTS[clause.op](float(found), clause.value)
    text, value = str(found), clause.value
    if isinstance(value, tuple):
        return (text in value) == (clause.op == "IN")
    assert isinstance(value, str)
    if clause.op in ("LIKE", "ILIKE"):
        flags = re.IGNORECASE if clause.op == "ILIKE" else 0
        return re.fullmatch(_like_regex(value), text, flags | re.DOTALL) is not None
    return (text == value) == (clause.op == "=")


_NUMBER_TESTS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _like_regex(pattern: str) -> str:
    return "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern
    )


# -- the tokenizer ------------------------------------------------------------------------


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, detail: str) -> MlflowFilterError:
        return MlflowFilterError(f"invalid filter {self.text!r} at {self.pos}: {detail}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def rest(self) -> str:
        return self.text[self.pos :]

    def word(self) -> str:
        self.skip()
        found = _WORD.match(self.text, self.pos)
        if found is None:
            return ""
        self.pos = found.end()
        return found.group()

    def quoted(self, quotes: str) -> str | None:
        """A quoted run of text ('' doubles a quote inside), or None if none starts here."""
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] not in quotes:
            return None
        quote, start, parts = self.text[self.pos], self.pos + 1, []
        index = start
        while True:
            end = self.text.find(quote, index)
            if end < 0:
                raise self.fail(f"unterminated {quote} quote")
            parts.append(self.text[index:end])
            if self.text.startswith(quote * 2, end):
                parts.append(quote)
                index = end + 2
                continue
            self.pos = end + 1
            return "".join(parts)

    def identifier(self) -> tuple[Kind, str]:
        self.skip()
        quoted = self.quoted('`"')
        if quoted is not None:  # a quoted key alone is an attribute, as in MLflow
            return "attribute", quoted
        head = self.word()
        if not head:
            raise self.fail("expected an identifier such as metrics.rmse")
        if self.pos >= len(self.text) or self.text[self.pos] != ".":
            return "attribute", head
        kind = _PREFIXES.get(head.lower())
        if kind is None:
            raise self.fail(
                f"invalid entity type {head!r}; valid ones are metric, parameter, tag, "
                "attribute, dataset"
            )
        self.pos += 1
        if self.pos < len(self.text) and self.text[self.pos] in '`"':
            key = self.quoted('`"')
            assert key is not None
        else:
            found = _KEY.match(self.text, self.pos)
            if found is None:
                raise self.fail(f"expected a key after {head}.")
            key, self.pos = found.group(), found.end()
        if not key:
            raise self.fail("empty key")
        return kind, key

    def clause(self) -> Clause:
        kind, key = self.identifier()
        op = self.operator()
        if op in ("IS NULL", "IS NOT NULL"):
            return Clause(kind, key, op, None)
        if op in ("IN", "NOT IN"):
            return Clause(kind, key, op, self.string_list())
        return Clause(kind, key, op, self.value())

    def operator(self) -> str:
        self.skip()
        for symbol in _COMPARISONS:
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                return "!=" if symbol == "<>" else symbol
        word = self.word().upper()
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT" and self.word().upper() == "IN":
            return "NOT IN"
        if word == "IS":
            following = self.word().upper()
            if following == "NULL":
                return "IS NULL"
            if following == "NOT" and self.word().upper() == "NULL":
                return "IS NOT NULL"
        raise self.fail("expected a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)")

    def value(self) -> float | str:
        text = self.quoted("'\"")
        if text is not None:
            return text
        found = _NUMBER.match(self.text, self.pos)
        if found is None:
            raise self.fail("expected a number or a quoted string")
        self.pos = found.end()
        number = float(found.group())
        if not math.isfinite(number):
            raise self.fail(f"{found.group()} is not a finite number")
        return number

    def string_list(self) -> tuple[str, ...]:
        self.skip()
        if not self.text.startswith("(", self.pos):
            raise self.fail("expected a parenthesised list of quoted strings")
        self.pos += 1
        items: list[str] = []
        while True:
            item = self.quoted("'\"")
            if item is None:
                raise self.fail("expected a quoted string in the list")
            items.append(item)
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            if self.text.startswith(")", self.pos):
                self.pos += 1
                return tuple(items)
            raise self.fail("expected ',' or ')' in the list")
