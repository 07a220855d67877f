"""Expectation suites: rules data must meet, inferred from a reference, edited as YAML,
checked by pandera.

    suite = infer_suite(reference, name="credit")       # from a reference version
    suite.save(Path("credit.yaml"))                     # people read and edit the YAML
    result = validate(new_data, ExpectationSuite.load(Path("credit.yaml")))
    result.success, result.failures                     # exact counts, example rows

Expectation kinds and their params:

    row_count_between {min, max}   the table has this many rows (one bound may be None)
    column_type {type}             every non-null value is of a logical type in TYPES
    not_null {}                    no nulls (None, NaN, NaT and pd.NA are null)
    max_null_fraction {max}        at most this fraction of the rows is null
    unique {}                      no non-null value appears twice
    between {min, max}             values are finite numbers within bounds (one may be None)
    in_set {values}                every non-null value is one of `values`

Only not_null and max_null_fraction look at nulls; the other column rules skip them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from loopline.data._checks import (
    _in_set_mask,
    _null_fraction,
    _positional,
    _range_mask,
    _type_mask,
    _unique_mask,
    _within,
)
from loopline.data._format import _json_safe, _n, _percent, _short_set, _span
from loopline.data._inference import infer_suite
from loopline.data._suite import (
    COLUMN_KINDS,
    KINDS,
    TABLE_KINDS,
    TYPES,
    Expectation,
    ExpectationSuite,
)
from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "COLUMN_KINDS",
    "KINDS",
    "TABLE_KINDS",
    "TYPES",
    "Expectation",
    "ExpectationSuite",
    "Failure",
    "ValidationResult",
    "infer_suite",
    "validate",
]

_EXAMPLE_COLUMNS = 12  # per example row: the failing column, key columns, then the first others


@dataclass(frozen=True)
class Failure:
    """A failed expectation: how many rows fail it, the first few of them, one line saying so."""

    expectation: Expectation
    failed_count: int
    examples: list[dict[str, object]]  # {"row": position in the data, column: value, ...}
    message: str


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of checking data against a suite; `passed` lists the rules that held."""

    suite: str
    success: bool
    checked_rows: int
    evaluated: int
    failures: tuple[Failure, ...]
    passed: tuple[Expectation, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe form: example values that are NaN or infinite are "nan", "inf", "-inf"."""
        return {
            "suite": self.suite,
            "success": self.success,
            "checked_rows": self.checked_rows,
            "evaluated": self.evaluated,
            "failures": [
                {**asdict(f), "expectation": f.expectation.to_dict()} for f in self.failures
            ],
            "passed": [exp.to_dict() for exp in self.passed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationResult:
        """Rebuild a result from `to_dict`'s form; malformed input raises InvalidInput."""
        try:
            failures = tuple(
                Failure(
                    _expectation_from_dict(item["expectation"]),
                    _typed(item["failed_count"], int, "failed_count"),
                    [dict(row) for row in _typed(item["examples"], list, "examples")],
                    _typed(item["message"], str, "message"),
                )
                for item in _typed(data["failures"], list, "failures")
            )
            return cls(
                _typed(data["suite"], str, "suite"),
                _typed(data["success"], bool, "success"),
                _typed(data["checked_rows"], int, "checked_rows"),
                _typed(data["evaluated"], int, "evaluated"),
                failures,
                tuple(_expectation_from_dict(e) for e in _typed(data["passed"], list, "passed")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed validation result: {exc!r}") from exc


def validate(df: pd.DataFrame, suite: ExpectationSuite, *, examples: int = 5) -> ValidationResult:
    """Check `df` against `suite` with pandera, collecting every failure (lazy validation).

    Each failure counts its failing rows exactly and keeps up to `examples` of them. A column
    the suite names but `df` lacks fails each of its rules; it does not raise.
    """
    import pandas as pd
    import pandera.pandas as pa

    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"validate needs a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(suite, ExpectationSuite):
        raise InvalidInput(f"validate needs an ExpectationSuite, got {type(suite).__name__}")
    if type(examples) is not int or examples < 0:
        raise InvalidInput(f"examples must be an integer >= 0, got {examples!r}")
    data = _positional(df)
    failing: dict[int, tuple[np.ndarray, str | None]] = {}
    try:
        _schema(suite, set(data.columns)).validate(data, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failing = _failing_rows(exc.schema_errors)
    except (
        pa.errors.SchemaInitError,
        pa.errors.SchemaDefinitionError,
        pa.errors.SchemaError,
    ) as exc:
        raise InvalidInput(f"pandera cannot check this data: {exc}") from exc
    failures: list[Failure] = []
    passed: list[Expectation] = []
    for index, exp in enumerate(suite.expectations):
        if exp.column is not None and exp.column not in data.columns:
            message = f"{exp.column}: column is missing from the data ({exp.kind})"
            failures.append(Failure(exp, len(data), [], message))
        elif index in failing:
            failures.append(_failure(exp, *failing[index], data, suite, examples))
        else:
            passed.append(exp)
    evaluated = len(suite.expectations)
    return ValidationResult(
        suite.name, not failures, len(data), evaluated, tuple(failures), tuple(passed)
    )


def _schema(suite: ExpectationSuite, present: set[str]) -> Any:
    """One named pandera check per expectation. n_failure_cases=1 spares pandera formatting
    every failing value; the exact failing rows come from each check's full output."""
    import pandera.pandas as pa

    columns: dict[str, list[Any]] = {}
    table = []
    for index, exp in enumerate(suite.expectations):
        check = pa.Check(
            _check_function(exp),
            name=f"loopline:{index}",
            ignore_na=exp.kind in ("column_type", "unique", "between", "in_set"),
            n_failure_cases=1,
        )
        if exp.column is None:
            table.append(check)
        elif exp.column in present:
            columns.setdefault(exp.column, []).append(check)
    return pa.DataFrameSchema(
        {
            name: pa.Column(checks=checks, nullable=True, name=name)
            for name, checks in columns.items()
        },
        checks=table,
    )


def _check_function(exp: Expectation) -> Callable[[Any], Any]:
    p = exp.params
    if exp.kind == "row_count_between":
        return lambda frame: _within(len(frame), p)
    if exp.kind == "column_type":
        return lambda s: _type_mask(s, str(p["type"]))
    if exp.kind == "not_null":
        return lambda s: s.notna()
    if exp.kind == "max_null_fraction":
        return lambda s: _null_fraction(s) <= cast(float, p["max"])
    if exp.kind == "unique":
        return _unique_mask
    if exp.kind == "between":
        return lambda s: _range_mask(s, p)
    return lambda s: _in_set_mask(s, cast(list[object], p["values"]))


def _failing_rows(errors: Sequence[Any]) -> dict[int, tuple[np.ndarray, str | None]]:
    """Per expectation index: the failing row positions, and the error if its check crashed."""
    import numpy as np
    import pandas as pd

    found: dict[int, tuple[np.ndarray, str | None]] = {}
    for error in errors:
        name = getattr(getattr(error, "check", None), "name", None)
        if not (isinstance(name, str) and name.startswith("loopline:")):
            continue
        output = error.check_output
        rows = np.array([], dtype="int64")
        if isinstance(output, pd.Series):  # indexed by row position; nulls already dropped
            rows = np.sort(output.index[~output.astype(bool)].to_numpy(dtype="int64"))
        crash = None if output is not None else str(error.failure_cases)
        found[int(name.removeprefix("loopline:"))] = (rows, crash)
    return found


def _failure(
    exp: Expectation,
    rows: np.ndarray,
    crash: str | None,
    data: pd.DataFrame,
    suite: ExpectationSuite,
    examples: int,
) -> Failure:
    import numpy as np

    p, column, count = exp.params, str(exp.column), len(rows)
    if exp.kind == "row_count_between":  # failed_count: how many rows too few or too many
        low, high = cast(int | None, p["min"]), cast(int | None, p["max"])
        off = low - len(data) if low is not None and len(data) < low else len(data) - (high or 0)
        return Failure(exp, off, [], f"row count {len(data)} is outside {_span(p)}")
    if crash is not None:
        return Failure(exp, len(data), [], f"{column}: {exp.kind} could not be checked: {crash}")
    if exp.kind == "max_null_fraction":
        rows = np.flatnonzero(data[column].isna().to_numpy())
        count = len(rows)
        share, most = _percent(count / len(data)), _percent(p["max"])
        message = f"{column}: {_n(count, 'null')} in {len(data)} rows ({share}), over {most}"
    else:
        dtype = data[column].dtype
        message = {
            "column_type": f"{column}: {_n(count)} not of type {p.get('type')} (dtype {dtype})",
            "not_null": f"{column}: {_n(count, 'null')}",
            "unique": f"{column}: {_n(count, 'row')} with a duplicated value",
            "between": f"{column}: {_n(count)} outside {_span(p)}",
            "in_set": f"{column}: {_n(count)} not in {_short_set(p.get('values'))}",
        }[exp.kind]
    return Failure(exp, count, _examples(data, rows[:examples], suite, column), message)


def _examples(
    data: pd.DataFrame, rows: np.ndarray, suite: ExpectationSuite, column: str
) -> list[dict[str, object]]:
    keys = [e.column for e in suite.expectations if e.kind == "unique" and e.column in data.columns]
    names = list(dict.fromkeys([column, *keys, *data.columns]))[:_EXAMPLE_COLUMNS]
    out: list[dict[str, object]] = []
    for position, values in zip(rows, data.iloc[rows][names].itertuples(index=False), strict=True):
        row: dict[str, object] = {"row": int(position)}
        for name, value in zip(names, values, strict=True):
            row["row (column)" if name == "row" else name] = _json_safe(value)
        out.append(row)
    return out


def _expectation_from_dict(data: Mapping[str, Any]) -> Expectation:
    return Expectation(data["kind"], data["column"], data["params"])


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value
