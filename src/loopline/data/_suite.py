"""The expectation model: rule kinds, `Expectation`, `ExpectationSuite` and their YAML form."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from loopline.data._checks import _is_number
from loopline.data._format import _names, _yaml_type
from loopline.errors import InvalidInput, NotFound

TABLE_KINDS = ("row_count_between",)
COLUMN_KINDS = ("column_type", "not_null", "max_null_fraction", "unique", "between", "in_set")
KINDS = TABLE_KINDS + COLUMN_KINDS
TYPES = ("integer", "float", "boolean", "string", "datetime", "timedelta", "category", "any")
"""Logical column types. `float` accepts integers too and `integer` accepts whole floats (an
integer column with a null loads as float64); `any` only asks that the column exists."""

_PARAMS: dict[str, tuple[str, ...]] = {
    "row_count_between": ("min", "max"),
    "column_type": ("type",),
    "not_null": (),
    "max_null_fraction": ("max",),
    "unique": (),
    "between": ("min", "max"),
    "in_set": ("values",),
}
_HEADER = """\
# loopline expectation suite {name}
# Check data with `loopline data validate NAME@VERSION --suite FILE`. Edit freely; the rules:
#   table:   row_count_between: {{min: 900, max: 1100}}   (null for no bound)
#   columns: column_type: integer | float | boolean | string | datetime | timedelta | category | any
#            not_null: true        max_null_fraction: 0.05        unique: true
#            between: {{min: 0, max: 120}}   (finite numbers only; null for no bound)
#            in_set: [a, b, c]
# Nulls count only against not_null and max_null_fraction.
"""


@dataclass(frozen=True)
class Expectation:
    """One rule; `column` is None for table rules. Params are checked and normalized."""

    kind: str
    column: str | None = None
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            hint = f"one of {', '.join(KINDS)}"
            raise InvalidInput(f"unknown expectation kind {self.kind!r}", hint=hint)
        if self.kind in TABLE_KINDS:
            if self.column is not None:
                raise InvalidInput(f"{self.kind} is about the table, not column {self.column!r}")
        elif not isinstance(self.column, str) or not self.column:
            raise InvalidInput(f"{self.kind} needs a column name, got {self.column!r}")
        object.__setattr__(self, "params", _checked_params(self.kind, self.params))

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "column": self.column, "params": dict(self.params)}


@dataclass(frozen=True)
class ExpectationSuite:
    """A named set of expectations, at most one of each kind per column."""

    name: str
    expectations: tuple[Expectation, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInput(f"a suite needs a non-empty name, got {self.name!r}")
        expectations = tuple(self.expectations)
        seen: set[tuple[str, str | None]] = set()
        for exp in expectations:
            if not isinstance(exp, Expectation):
                raise InvalidInput(f"a suite holds Expectations, got {type(exp).__name__}")
            if (exp.kind, exp.column) in seen:
                where = "the table" if exp.column is None else f"column {exp.column!r}"
                raise InvalidInput(f"suite {self.name!r} has two {exp.kind} rules on {where}")
            seen.add((exp.kind, exp.column))
        object.__setattr__(self, "expectations", expectations)

    def to_yaml(self) -> str:
        """The suite as commented YAML: table rules, then one block per column."""
        return _HEADER.format(name=json.dumps(self.name, ensure_ascii=False)) + _dump_yaml(self)

    @classmethod
    def from_yaml(cls, text: str) -> ExpectationSuite:
        """Parse `to_yaml`'s format strictly; errors name the line and the rule."""
        doc, lines = _load_yaml(text)
        return _suite_from_doc(doc, lines)

    @classmethod
    def load(cls, path: Path) -> ExpectationSuite:
        """Read a suite file; errors name the file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise NotFound(f"no expectation suite file at {path}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read expectation suite {path}: {exc}") from exc
        try:
            return cls.from_yaml(text)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}", hint=exc.hint) from exc

    def save(self, path: Path) -> None:
        """Write the suite as YAML to `path`."""
        try:
            Path(path).write_text(self.to_yaml(), encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write expectation suite to {path}: {exc}") from exc


# --- params ---------------------------------------------------------------------------------


def _checked_params(kind: str, params: object) -> dict[str, object]:
    if not isinstance(params, Mapping):
        raise InvalidInput(f"{kind} params must be a mapping, got {_yaml_type(params)}")
    expected = _PARAMS[kind]
    unknown = [str(key) for key in params if key not in expected]
    if unknown:
        wanted = f"expected {_names(expected)}" if expected else "it takes none"
        raise InvalidInput(f"{kind} has unknown key {unknown[0]!r}; {wanted}")
    missing = [key for key in expected if key not in params]
    if missing:
        raise InvalidInput(f"{kind} needs {_names(missing)}")
    if kind in ("between", "row_count_between"):
        return _checked_bounds(kind, params["min"], params["max"])
    if kind == "column_type" and params["type"] not in TYPES:
        raise InvalidInput(f"column_type must be one of {', '.join(TYPES)}; got {params['type']!r}")
    if kind == "max_null_fraction":
        value = _number(kind, "max", params["max"])
        if not 0 <= value <= 1:
            raise InvalidInput(f"max_null_fraction must be between 0 and 1, got {value}")
        return {"max": value}
    if kind == "in_set":
        return {"values": _checked_values(params["values"])}
    return dict(params)


def _checked_bounds(kind: str, low: object, high: object) -> dict[str, object]:
    whole = kind == "row_count_between"
    lo = None if low is None else _number(kind, "min", low, whole=whole)
    hi = None if high is None else _number(kind, "max", high, whole=whole)
    if lo is None and hi is None:
        raise InvalidInput(f"{kind} needs a number for min or max (null means unbounded)")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput(f"{kind} has min {lo} greater than max {hi}")
    if whole and min(b for b in (lo, hi) if b is not None) < 0:
        raise InvalidInput(f"{kind} bounds cannot be negative")
    return {"min": lo, "max": hi}


def _number(kind: str, key: str, value: object, *, whole: bool = False) -> int | float:
    if not _is_number(value):
        raise InvalidInput(f"{kind} {key} must be a number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number) or whole:
        wanted = "a whole number" if whole else "a finite number"
        raise InvalidInput(f"{kind} {key} must be {wanted}, got {number}")
    return number


def _checked_values(values: object) -> list[object]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInput(f"in_set needs a list of allowed values, got {_yaml_type(values)}")
    checked = [_plain_scalar(value) for value in values]
    for value, plain in zip(values, checked, strict=True):
        if plain is None:
            raise InvalidInput(f"in_set values must be strings, numbers or booleans; got {value!r}")
    return checked


def _plain_scalar(value: object) -> object | None:
    """str/bool/int/finite float as a plain Python value; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return None


# --- YAML -----------------------------------------------------------------------------------


def _dump_yaml(suite: ExpectationSuite) -> str:
    import yaml

    class Flow(list[object]):
        pass

    class FlowMap(dict[str, object]):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: Dumper, data: Flow) -> Any:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    def flow_map(dumper: Dumper, data: FlowMap) -> Any:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)

    def text(dumper: Dumper, data: str) -> Any:  # YAML reads raw NEL/LS/PS as line breaks
        style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(Flow, flow_list)
    Dumper.add_representer(FlowMap, flow_map)
    Dumper.add_representer(str, text)

    def value(exp: Expectation) -> object:
        if exp.kind in ("between", "row_count_between"):
            return FlowMap(exp.params)
        if exp.kind == "in_set":
            return Flow(cast(list[object], exp.params["values"]))
        return next(iter(exp.params.values()), True)  # not_null, unique: true

    doc: dict[str, object] = {"suite": suite.name, "version": 1}
    table = {e.kind: value(e) for e in suite.expectations if e.column is None}
    if table:
        doc["table"] = table
    columns: dict[str, dict[str, object]] = {}
    for exp in suite.expectations:
        if exp.column is not None:
            columns.setdefault(exp.column, {})[exp.kind] = value(exp)
    doc["columns"] = {
        name: dict(sorted(rules.items(), key=lambda item: COLUMN_KINDS.index(item[0])))
        for name, rules in columns.items()
    }
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def _load_yaml(text: str) -> tuple[object, dict[tuple[str, ...], int]]:
    import yaml

    if not isinstance(text, str):
        raise InvalidInput(f"suite YAML must be text, got {type(text).__name__}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput("the suite YAML is empty")
        lines: dict[tuple[str, ...], int] = {}
        _note_lines(node, (), lines, set())
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"the suite YAML does not parse{where}: {problem}") from exc
    finally:
        loader.dispose()


def _note_lines(
    node: Any, path: tuple[str, ...], lines: dict[tuple[str, ...], int], seen: set[int]
) -> None:
    """Record the line of every mapping key; reject duplicate keys."""
    import yaml

    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in keys:
                raise InvalidInput(f"line {line}: duplicate key {key!r}")
            keys.add(key)
            lines[(*path, key)] = line
            _note_lines(value_node, (*path, key), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _note_lines(item, path, lines, seen)


def _suite_from_doc(doc: object, lines: dict[tuple[str, ...], int]) -> ExpectationSuite:
    def fail(path: tuple[str, ...], message: str, hint: str | None = None) -> InvalidInput:
        line = lines.get(path)
        where = ".".join(path) if line is None else f"line {line}, {'.'.join(path)}"
        return InvalidInput(f"{where}: {message}", hint=hint)

    if not isinstance(doc, dict):
        raise InvalidInput(
            f"a suite YAML must be a mapping with 'suite' and 'columns', got {_yaml_type(doc)}"
        )
    for key in doc:
        if key not in ("suite", "version", "table", "columns"):
            raise fail((str(key),), "unknown key", hint="expected suite, version, table, columns")
    name = doc.get("suite")
    if not isinstance(name, str) or not name.strip():
        raise fail(("suite",), f"the suite needs a name (text), got {name!r}")
    if doc.get("version", 1) != 1:
        raise fail(("version",), f"unknown suite format version {doc['version']!r}; expected 1")
    sections: list[tuple[tuple[str, ...], str | None, object]] = [
        (("table",), None, doc.get("table"))
    ]
    columns = doc.get("columns") or {}
    if not isinstance(columns, dict):
        raise fail(
            ("columns",), f"expected a mapping of column names to rules, got {_yaml_type(columns)}"
        )
    for column, rules in columns.items():
        if not isinstance(column, str):
            raise fail(("columns", str(column)), "column names must be text; quote it")
        sections.append((("columns", column), column, rules))
    expectations: list[Expectation] = []
    for path, column, rules in sections:
        if rules is None:
            continue
        if not isinstance(rules, dict):
            raise fail(path, f"expected a mapping of rules, got {_yaml_type(rules)}")
        allowed = TABLE_KINDS if column is None else COLUMN_KINDS
        for kind, value in rules.items():
            if kind not in allowed:
                raise fail((*path, str(kind)), "unknown rule", hint=f"one of {', '.join(allowed)}")
            try:
                exp = _expectation_from_yaml(kind, column, value)
            except InvalidInput as exc:
                raise fail((*path, kind), exc.message, exc.hint) from exc
            if exp is not None:
                expectations.append(exp)
    return ExpectationSuite(name, tuple(expectations))


def _expectation_from_yaml(kind: str, column: str | None, value: object) -> Expectation | None:
    if kind in ("not_null", "unique"):
        if not isinstance(value, bool):
            raise InvalidInput(f"{kind} must be true or false, got {value!r}")
        return Expectation(kind, column) if value else None
    if kind in ("between", "row_count_between"):
        if not isinstance(value, dict):
            raise InvalidInput(
                f"{kind} must be a mapping like {{min: 0, max: 10}}, got {_yaml_type(value)}"
            )
        return Expectation(kind, column, value)
    if kind == "in_set" and not isinstance(value, list):
        raise InvalidInput(f"in_set must be a list of allowed values, got {_yaml_type(value)}")
    return Expectation(kind, column, {_PARAMS[kind][0]: value})
