"""Expectation suites: inference, the YAML format, and validation by pandera."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from loopline.data.validation import (
    Expectation,
    ExpectationSuite,
    ValidationResult,
    infer_suite,
    validate,
)
from loopline.errors import InvalidInput, NotFound

N = 1000


@pytest.fixture
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "customer_id": np.arange(N),
            "age": rng.integers(18, 91, N),
            "income": rng.normal(50_000, 10_000, N),
            "city": rng.choice(["Berlin", "Lisbon", "Paris"], N),
            "name": [f"person {i}" for i in range(N)],
            "active": rng.random(N) > 0.5,
            "score": np.where(rng.random(N) < 0.05, np.nan, rng.random(N)),
            "joined": pd.date_range("2024-01-01", periods=N, freq="h"),
            "tier": pd.Categorical(rng.choice(["gold", "silver"], N)),
        }
    )


def rules(suite: ExpectationSuite, column: str | None) -> dict[str, dict[str, object]]:
    return {e.kind: dict(e.params) for e in suite.expectations if e.column == column}


def by_kind(result: ValidationResult) -> dict[tuple[str | None, str], int]:
    return {(f.expectation.column, f.expectation.kind): f.failed_count for f in result.failures}


# --- inference ------------------------------------------------------------------------------


def test_infer_finds_types_nulls_ranges_categories_and_keys(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")

    assert rules(suite, None) == {"row_count_between": {"min": 900, "max": 1100}}
    age = rules(suite, "age")
    assert age["column_type"] == {"type": "integer"} and "not_null" in age
    low, high = reference["age"].min(), reference["age"].max()
    pad = 0.1 * (high - low)
    assert age["between"] == {"min": math.floor(low - pad), "max": math.ceil(high + pad)}
    assert rules(suite, "city")["in_set"] == {"values": ["Berlin", "Lisbon", "Paris"]}
    assert "in_set" not in rules(suite, "name")  # every value distinct: names, not categories
    assert "unique" in rules(suite, "customer_id")  # unique and named like an id
    assert "unique" not in rules(suite, "name")  # unique, but not an id
    score = rules(suite, "score")
    assert "not_null" not in score
    observed = reference["score"].isna().mean()
    assert observed <= score["max_null_fraction"]["max"] <= observed * 1.1 + 1e-4
    assert rules(suite, "active") == {"column_type": {"type": "boolean"}, "not_null": {}}
    assert rules(suite, "joined")["column_type"] == {"type": "datetime"}
    assert rules(suite, "tier")["column_type"] == {"type": "category"}
    assert rules(suite, "tier")["in_set"] == {"values": ["gold", "silver"]}


def test_infer_is_deterministic_and_keeps_column_order(reference: pd.DataFrame) -> None:
    first = infer_suite(reference, name="customers")
    assert first == infer_suite(reference.copy(), name="customers")
    columns = list(dict.fromkeys(e.column for e in first.expectations if e.column))
    assert columns == list(reference.columns)


def test_infer_ranges_do_not_cross_zero_and_round_outward() -> None:
    frame = pd.DataFrame(
        {"price": [0.5, 3.25, 9.99], "loss": [-5.0, -1.0, -0.5], "third": [1 / 3, 2 / 3, 0.5]}
    )
    suite = infer_suite(frame, name="prices", margin=0.5)
    assert rules(suite, "price")["between"] == {"min": 0.0, "max": 14.735}
    assert rules(suite, "loss")["between"] == {"min": -7.25, "max": 0.0}
    # four significant digits of the range, rounded outward: short and still covering
    assert rules(suite, "third")["between"] == {"min": 0.1666, "max": 0.8334}


def test_infer_marks_key_columns_unique_and_checks_arguments(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="c", key_columns=["name"])
    assert "unique" in rules(suite, "name")
    with pytest.raises(InvalidInput, match="key column 'nope'"):
        infer_suite(reference, name="c", key_columns=["nope"])
    with pytest.raises(InvalidInput, match="margin"):
        infer_suite(reference, name="c", margin=-1)
    with pytest.raises(InvalidInput, match="max_categories"):
        infer_suite(reference, name="c", max_categories=-1)
    with pytest.raises(InvalidInput, match="DataFrame"):
        infer_suite([1, 2], name="c")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="name"):
        infer_suite(reference, name="")


def test_infer_leaves_ranges_out_when_the_data_holds_infinity() -> None:
    frame = pd.DataFrame({"x": [1.0, np.inf, 2.0, np.nan]})
    suite = infer_suite(frame, name="inf")
    assert "between" not in rules(suite, "x")
    assert validate(frame, suite).success


def test_infer_on_mixed_object_column_asks_only_for_existence() -> None:
    frame = pd.DataFrame({"mixed": pd.Series(["a", 1, 2.5, "b"], dtype=object)})
    suite = infer_suite(frame, name="mixed")
    assert rules(suite, "mixed") == {"column_type": {"type": "any"}, "not_null": {}}
    assert validate(frame, suite).success


# --- YAML -----------------------------------------------------------------------------------


def test_yaml_round_trips_and_reads_well(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    text = suite.to_yaml()
    assert text.startswith("# loopline expectation suite")
    assert ExpectationSuite.from_yaml(text) == suite
    assert text == ExpectationSuite.from_yaml(text).to_yaml()  # stable
    assert "  city:\n    column_type: string\n    not_null: true\n" in text
    assert "in_set: [Berlin, Lisbon, Paris]" in text
    assert "row_count_between: {min: 900, max: 1100}" in text


def test_yaml_keeps_awkward_column_names_and_values() -> None:
    names = ["first name", "größe", "<script>alert(1)</script>", "yes", "1", "a: b", "#x", "\x85"]
    frame = pd.DataFrame({name: ["null", "no", "no", "null"] for name in names})
    suite = infer_suite(frame, name='suite "quoted"\nnext line')
    loaded = ExpectationSuite.from_yaml(suite.to_yaml())
    assert loaded == suite
    assert rules(loaded, "yes")["in_set"] == {"values": ["no", "null"]}


def test_save_and_load(tmp_path: Path, reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    path = tmp_path / "suite.yaml"
    suite.save(path)
    assert ExpectationSuite.load(path) == suite
    with pytest.raises(NotFound):
        ExpectationSuite.load(tmp_path / "missing.yaml")
    path.write_text("suite: s\ncolumns:\n  a:\n    between: {min: 2, max: 1}\n")
    with pytest.raises(InvalidInput, match=r"suite\.yaml: line 4, columns\.a\.between: .*min 2"):
        ExpectationSuite.load(path)


GOOD = "suite: s\ncolumns:\n  age:\n    {rule}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("suite: [unclosed", "does not parse at line 1"),
        ("- a\n- b\n", "must be a mapping"),
        ("just text", "must be a mapping"),
        ("", "empty"),
        ("suite: s\nrules: {}\n", "line 2, rules: unknown key"),
        ("columns: {}\n", "suite: the suite needs a name"),
        ("suite: s\nversion: 2\n", "format version 2"),
        ("suite: s\ncolumns: [a, b]\n", "columns: expected a mapping"),
        ("suite: s\ncolumns:\n  1: {not_null: true}\n", "column names must be text"),
        ("suite: s\ncolumns:\n  age: [not_null]\n", "columns.age: expected a mapping of rules"),
        ("suite: s\ntable:\n  rows_between: {min: 1, max: 2}\n", "line 3, table.rows_between"),
        ("suite: s\ncolumns:\n  a: {}\n  a: {}\n", "line 4: duplicate key 'a'"),
        (GOOD.format(rule="is_positive: true"), "line 4, columns.age.is_positive: unknown rule"),
        (GOOD.format(rule="between: {min: 1}"), "between needs 'max'"),
        (GOOD.format(rule="between: {min: 1, max: 2, step: 1}"), "unknown key 'step'"),
        (GOOD.format(rule="between: {min: 5, max: 1}"), "min 5 greater than max 1"),
        (GOOD.format(rule="between: {min: low, max: 1}"), "between min must be a number"),
        (GOOD.format(rule="between: {min: .nan, max: 1}"), "must be a finite number"),
        (GOOD.format(rule="between: {min: null, max: null}"), "needs a number for min or max"),
        (GOOD.format(rule="between: [1, 2]"), "between must be a mapping"),
        (GOOD.format(rule="in_set: a"), "line 4, columns.age.in_set: in_set must be a list"),
        (GOOD.format(rule="in_set: [a, null]"), "strings, numbers or booleans"),
        (GOOD.format(rule="not_null: 'yes'"), "not_null must be true or false"),
        (GOOD.format(rule="column_type: int"), "column_type must be one of"),
        (GOOD.format(rule="max_null_fraction: 1.5"), "between 0 and 1"),
        ("suite: s\ntable:\n  row_count_between: {min: 1.5, max: 2}\n", "a whole number"),
    ],
)
def test_from_yaml_rejects_bad_suites_naming_the_place(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ExpectationSuite.from_yaml(text)
    assert expected in str(caught.value)
    assert "\n" not in caught.value.message


def test_yaml_allows_one_sided_bounds_and_false_flags() -> None:
    suite = ExpectationSuite.from_yaml(
        "suite: s\ncolumns:\n  x:\n    between: {min: 0, max: null}\n    unique: false\n"
    )
    assert suite.expectations == (Expectation("between", "x", {"min": 0, "max": None}),)
    frame = pd.DataFrame({"x": [0.0, 1e300, np.inf, -1.0]})
    assert by_kind(validate(frame, suite)) == {("x", "between"): 2}  # inf is never in range


def test_expectations_check_their_own_params() -> None:
    with pytest.raises(InvalidInput, match="unknown expectation kind 'positive'"):
        Expectation("positive", "x")
    with pytest.raises(InvalidInput, match="needs a column name"):
        Expectation("not_null")
    with pytest.raises(InvalidInput, match="about the table"):
        Expectation("row_count_between", "x", {"min": 1, "max": 2})
    with pytest.raises(InvalidInput, match="two not_null rules"):
        ExpectationSuite("s", (Expectation("not_null", "x"), Expectation("not_null", "x")))


# --- validation -----------------------------------------------------------------------------


def test_reference_passes_its_own_inferred_suite(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    result = validate(reference, ExpectationSuite.from_yaml(suite.to_yaml()))
    assert result.success and result.failures == ()
    assert result.checked_rows == N and result.evaluated == len(suite.expectations)
    assert len(result.passed) == result.evaluated


def test_corrupted_copy_fails_with_exact_counts(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    bad = reference.copy()
    bad.loc[:36, "age"] = 500  # 37 out of range
    bad.loc[100:111, "income"] = np.nan  # 12 nulls
    bad.loc[200:202, "city"] = "Atlantis"  # 3 unknown categories
    bad = pd.concat([bad, bad.iloc[300:304]])  # 4 duplicated ids: 8 rows share one
    result = validate(bad, suite, examples=3)

    assert not result.success
    assert by_kind(result) == {
        ("customer_id", "unique"): 8,
        ("age", "between"): 37,
        ("income", "not_null"): 12,
        ("city", "in_set"): 3,
    }
    age = next(f for f in result.failures if f.expectation.kind == "between")
    bounds = rules(suite, "age")["between"]
    assert age.message == f"age: 37 values outside [{bounds['min']}, {bounds['max']}]"
    assert [row["row"] for row in age.examples] == [0, 1, 2]
    assert age.examples[0]["age"] == 500 and "customer_id" in age.examples[0]
    city = next(f for f in result.failures if f.expectation.column == "city")
    assert city.message.startswith('city: 3 values not in {"Berlin", "Lisbon", "Paris"}')

    few = validate(reference.iloc[:500], suite)
    assert by_kind(few)[(None, "row_count_between")] == 400  # 400 rows short of 900
    assert few.failures[0].message == "row count 500 is outside [900, 1100]"


def test_nan_counts_as_null_and_infinity_is_out_of_range() -> None:
    suite = ExpectationSuite(
        "s",
        (
            Expectation("not_null", "x"),
            Expectation("between", "x", {"min": 0, "max": 10}),
            Expectation("max_null_fraction", "x", {"max": 0.2}),
        ),
    )
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 5.0, np.nan]})
    result = validate(frame, suite)
    assert by_kind(result) == {
        ("x", "not_null"): 2,
        ("x", "between"): 2,
        ("x", "max_null_fraction"): 2,
    }
    json.dumps(result.to_dict(), allow_nan=False)  # NaN and inf examples are strings
    between = next(f for f in result.failures if f.expectation.kind == "between")
    assert [row["x"] for row in between.examples] == ["inf", "-inf"]


def test_mixed_type_object_column_fails_type_and_range_per_value() -> None:
    suite = ExpectationSuite(
        "s",
        (
            Expectation("column_type", "code", {"type": "string"}),
            Expectation("column_type", "amount", {"type": "float"}),
            Expectation("between", "amount", {"min": 0, "max": 100}),
        ),
    )
    frame = pd.DataFrame(
        {
            "code": pd.Series(["a", 1, "b", 2.5, None], dtype=object),
            "amount": pd.Series([1, "12", 3.5, True, None], dtype=object),
        }
    )
    assert by_kind(validate(frame, suite)) == {
        ("code", "column_type"): 2,
        ("amount", "column_type"): 2,  # the text "12" and the boolean
        ("amount", "between"): 2,
    }


def test_integer_type_accepts_whole_floats_from_a_column_with_nulls() -> None:
    suite = ExpectationSuite("s", (Expectation("column_type", "n", {"type": "integer"}),))
    assert validate(pd.DataFrame({"n": [1.0, np.nan, 3.0]}), suite).success
    failed = validate(pd.DataFrame({"n": [1.0, 1.5, np.inf]}), suite)
    assert by_kind(failed) == {("n", "column_type"): 2}


def test_missing_column_is_a_failure_not_an_error(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    result = validate(reference.drop(columns=["city"]), suite)
    assert {f.expectation.kind for f in result.failures} == {"column_type", "not_null", "in_set"}
    assert all(f.expectation.column == "city" for f in result.failures)
    assert result.failures[0].message == "city: column is missing from the data (column_type)"


def test_empty_frames() -> None:
    empty = pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)})
    suite = infer_suite(empty, name="empty")
    assert rules(suite, None) == {"row_count_between": {"min": 0, "max": 0}}
    assert validate(empty, suite).success
    assert validate(pd.DataFrame(), ExpectationSuite("nothing")).success
    ten_rows = infer_suite(pd.DataFrame({"a": np.arange(10.0)}), name="ten")
    assert rules(ten_rows, None) == {"row_count_between": {"min": 9, "max": 11}}
    assert by_kind(validate(empty, ten_rows)) == {(None, "row_count_between"): 9}


def test_huge_number_of_failures_keeps_counts_exact_and_examples_few() -> None:
    rows = 300_000
    frame = pd.DataFrame({"x": np.arange(rows, dtype=float), "k": np.zeros(rows, dtype=int)})
    suite = ExpectationSuite(
        "s",
        (
            Expectation("between", "x", {"min": 0, "max": 10}),
            Expectation("unique", "k"),
            Expectation("in_set", "k", {"values": [1]}),
        ),
    )
    result = validate(frame, suite, examples=4)
    assert by_kind(result) == {
        ("x", "between"): rows - 11,
        ("k", "unique"): rows,
        ("k", "in_set"): rows,
    }
    assert all(len(f.examples) == 4 for f in result.failures)
    assert [r["row"] for r in result.failures[0].examples] == [11, 12, 13, 14]
    assert validate(frame, suite, examples=0).failures[0].examples == []


def test_example_rows_are_positions_even_with_an_odd_index() -> None:
    frame = pd.DataFrame({"x": [1, 50, 2, 60]}, index=["a", "a", "b", "c"])
    suite = ExpectationSuite("s", (Expectation("between", "x", {"min": 0, "max": 10}),))
    failure = validate(frame, suite).failures[0]
    assert [(r["row"], r["x"]) for r in failure.examples] == [(1, 50), (3, 60)]


def test_awkward_column_names_validate() -> None:
    names = ["first name", "größe", "<script>", "row"]
    frame = pd.DataFrame({name: ["a", "b", "a", "b"] for name in names})
    suite = infer_suite(frame, name="odd")
    bad = frame.copy()
    bad.loc[0, "<script>"] = "zzz"
    failure = validate(bad, suite).failures[0]
    assert failure.message.startswith("<script>: 1 value not in")
    assert failure.examples == [
        {"row": 0, "<script>": "zzz", "first name": "a", "größe": "a", "row (column)": "a"}
    ]


def test_validate_checks_its_arguments() -> None:
    suite = ExpectationSuite("s")
    with pytest.raises(InvalidInput, match="DataFrame"):
        validate({"a": [1]}, suite)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="ExpectationSuite"):
        validate(pd.DataFrame(), "suite.yaml")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="examples"):
        validate(pd.DataFrame(), suite, examples=-1)
    with pytest.raises(InvalidInput, match="duplicate column names: a"):
        validate(pd.DataFrame([[1, 2]], columns=["a", "a"]), suite)


def test_result_round_trips_through_json(reference: pd.DataFrame) -> None:
    suite = infer_suite(reference, name="customers")
    bad = reference.copy()
    bad.loc[:4, "score"] = np.inf
    bad.loc[5:9, "joined"] = pd.NaT
    result = validate(bad, suite)
    assert not result.success
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert ValidationResult.from_dict(data) == result
    with pytest.raises(InvalidInput, match="malformed validation result"):
        ValidationResult.from_dict({"suite": "s"})
    with pytest.raises(InvalidInput, match="malformed validation result"):
        ValidationResult.from_dict({**data, "checked_rows": "many"})


# --- properties -----------------------------------------------------------------------------

_frames = hpd.data_frames(
    columns=[
        hpd.column("ints", dtype=int),
        hpd.column("floats", elements=st.floats(allow_nan=True, allow_infinity=True)),
        hpd.column("small", elements=st.floats(-1e-300, 1e-300) | st.floats(1e300, 1.7e308)),
        hpd.column("words", elements=st.sampled_from(["a", "b", "c", "<b>"]), dtype=object),
        hpd.column("text", elements=st.text(max_size=5), dtype=object),
        hpd.column("flags", dtype=bool),
        hpd.column(
            "mixed",
            elements=st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3)),
            dtype=object,
        ),
        hpd.column("big", elements=st.integers(-(2**63), 2**63 - 1), dtype="int64"),
    ],
    index=hpd.range_indexes(max_size=30),
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_frames, margin=st.sampled_from([0.0, 0.1, 2.5]))
def test_any_frame_passes_the_suite_inferred_from_it(frame: pd.DataFrame, margin: float) -> None:
    frame["category"] = frame["words"].astype("category")
    frame["nullable"] = frame["ints"].astype("Int64").where(frame["flags"])
    frame["string"] = frame["text"].astype("str").where(~frame["flags"])
    frame["when"] = pd.to_datetime(frame["ints"] % 10**6, unit="s").where(frame["flags"])
    frame["user_id"] = np.arange(len(frame))
    suite = ExpectationSuite.from_yaml(infer_suite(frame, name="p", margin=margin).to_yaml())
    result = validate(frame, suite)
    assert result.success, [f.message for f in result.failures]


def test_class_label_column_is_inferred_as_in_set_not_between() -> None:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame  # target: integer classes 0, 1, 2
    suite = infer_suite(frame, name="wine")
    assert rules(suite, "target") == {
        "column_type": {"type": "integer"},
        "not_null": {},
        "in_set": {"values": [0, 1, 2]},
    }
    assert validate(frame, suite).success
    unseen = frame.assign(target=frame["target"].replace(2, 3))  # a range would let 3 through
    assert not validate(unseen, suite).success
    # many distinct integers, most seen once: still a range, not a set
    counts = pd.DataFrame({"count": np.arange(100)})
    assert "between" in rules(infer_suite(counts, name="c"), "count")
    assert "in_set" not in rules(infer_suite(counts, name="c"), "count")
