"""Drift statistics: against scipy, merged windows, edge cases, drift() on every input kind."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

import loopline as ll
from loopline.errors import InvalidInput
from loopline.monitoring import (
    CategoricalReference,
    CategoricalWindow,
    DriftThresholds,
    NumericReference,
    NumericWindow,
    drift,
    judge,
)
from loopline.monitoring._categorical import categorical_statistics
from loopline.monitoring._numeric import PSI_EPSILON, numeric_statistics


def _numeric(reference: object, current: object, **build: int) -> tuple[NumericReference, dict]:
    summary = NumericReference.build(reference, **build)
    window = NumericWindow(summary)
    window.update(current)
    return summary, numeric_statistics(summary, window)


def _json(value: object) -> object:
    return json.loads(json.dumps(value, allow_nan=False))


# --- numeric statistics against scipy ---------------------------------------------------

samples = st.lists(
    st.one_of(
        st.integers(-20, 20).map(float),
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60)
@given(reference=samples, current=samples)
def test_ks_is_scipys_statistic_within_the_largest_reference_bin(reference, current) -> None:
    summary, stats = _numeric(reference, current, fine_bins=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's own, for one value a side
        exact = ks_2samp(reference, current, method="asymp")
    assert stats["ks"] <= exact.statistic + 1e-12
    assert exact.statistic - stats["ks"] <= summary.largest_bin_share + 1e-12


def test_ks_and_its_p_value_equal_scipys_when_every_reference_value_is_an_edge() -> None:
    rng = np.random.default_rng(3)
    for reference, current in [
        (rng.normal(0, 1, 1500), rng.normal(0.1, 1.2, 900)),
        (rng.integers(0, 8, 5000).astype(float), rng.integers(0, 9, 7000).astype(float)),
    ]:
        summary, stats = _numeric(reference, current)
        exact = ks_2samp(reference, current, method="asymp")
        assert summary.largest_bin_share == 0.0
        assert stats["ks"] == pytest.approx(exact.statistic, abs=1e-12)
        assert stats["ks_pvalue"] == pytest.approx(exact.pvalue, rel=1e-9)


def test_ks_on_100k_rows_is_within_one_fine_bin_of_scipy() -> None:
    rng = np.random.default_rng(4)
    reference, current = rng.lognormal(0, 1, 100_000), rng.lognormal(0.02, 1, 80_000)
    summary, stats = _numeric(reference, current)
    exact = ks_2samp(reference, current, method="asymp")
    assert 0 <= exact.statistic - stats["ks"] <= summary.largest_bin_share + 1e-12
    assert summary.largest_bin_share <= 1 / 2048 + 1e-4
    assert stats["ks_pvalue"] >= exact.pvalue  # a smaller statistic: never more alarming
    assert stats["ks_pvalue"] == pytest.approx(exact.pvalue, rel=0.5)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 3.0])
def test_wasserstein_is_scipys_divided_by_the_reference_std(shift: float) -> None:
    """Tolerance: 1 % of the value + 0.002 sd (linear CDFs inside each fine bin)."""
    rng = np.random.default_rng(5)
    reference, current = rng.normal(10, 2, 50_000), rng.normal(10 + shift * 2, 2.5, 30_000)
    _, stats = _numeric(reference, current)
    expected = wasserstein_distance(reference, current) / reference.std()
    assert stats["wasserstein"] == pytest.approx(expected, rel=0.01, abs=0.002)


def test_wasserstein_on_integers_is_exact() -> None:
    rng = np.random.default_rng(6)
    reference, current = rng.poisson(3, 5000).astype(float), rng.poisson(3.5, 4000).astype(float)
    _, stats = _numeric(reference, current)
    expected = wasserstein_distance(reference, current) / reference.std()
    assert stats["wasserstein"] == pytest.approx(expected, rel=1e-9)


def test_psi_by_hand_on_ten_reference_deciles() -> None:
    reference = np.arange(100, dtype=float)  # deciles: 0-9, 10-19, ..., 90-99
    current = np.array([5.0] * 50 + [15.0] * 30 + [95.0] * 10 + [150.0] * 10)
    _, stats = _numeric(reference, current, psi_bins=10)
    ref = np.array([0.0] + [0.1] * 10 + [0.0])  # below min, 10 deciles, above max
    cur = np.array([0.0, 0.5, 0.3] + [0.0] * 7 + [0.1, 0.1])
    ref, cur = np.maximum(ref, PSI_EPSILON), np.maximum(cur, PSI_EPSILON)
    assert stats["psi"] == pytest.approx(float(np.sum((cur - ref) * np.log(cur / ref))))


# --- categorical statistics against scipy -----------------------------------------------


def test_chi2_and_js_equal_scipys_on_a_small_table() -> None:
    reference = ["a"] * 30 + ["b"] * 50 + ["c"] * 20
    current = ["a"] * 40 + ["b"] * 40 + ["c"] * 15 + ["d"] * 5
    summary = CategoricalReference.build(reference)
    window = CategoricalWindow(summary)
    window.update(current)
    stats = categorical_statistics(summary, window)
    table = np.array([[30, 50, 20, 0], [40, 40, 15, 5]])
    expected = chi2_contingency(table, correction=False)
    assert stats["chi2"] == pytest.approx(expected.statistic)
    assert stats["chi2_pvalue"] == pytest.approx(expected.pvalue)
    assert stats["js"] == pytest.approx(jensenshannon(table[0], table[1], base=2))
    assert stats["unseen"] == ["d"] and stats["unseen_share"] == pytest.approx(0.05)


def test_identical_categories_have_no_drift() -> None:
    summary = CategoricalReference.build(["x", "y"] * 50)
    window = CategoricalWindow(summary)
    window.update(np.array(["y", "x"] * 40, dtype=object))
    feature = judge("colour", summary, window)
    assert (feature.psi, feature.chi2, feature.js, feature.drifted) == (0.0, 0.0, 0.0, False)


def test_a_reference_over_the_category_cap_counts_the_rest_as_other() -> None:
    reference = [f"v{i}" for i in range(50)] + ["v0"] * 10
    summary = CategoricalReference.build(reference, max_categories=5)
    assert summary.categories[0] == "v0" and len(summary.categories) == 5
    assert summary.other == 45 and not summary.complete
    window = CategoricalWindow(summary)
    window.update(["v40", "never seen"])
    assert window.other == 2 and window.unseen_rows == 0


# --- merging and storing ----------------------------------------------------------------


def test_two_numeric_windows_of_halves_merge_into_the_window_of_all() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 1, 20_000), [np.nan, np.inf, -np.inf, 50.0, -50.0]])
    rng.shuffle(values)
    summary = NumericReference.build(rng.normal(0, 1, 10_000))
    whole, first, second = NumericWindow(summary), NumericWindow(summary), NumericWindow(summary)
    whole.update(values)
    first.update(values[:7000])
    second.update(values[7000:])
    first.merge(second)
    assert np.array_equal(first.counts, whole.counts)
    for name in ("count", "nulls", "nonfinite", "minimum", "maximum"):
        assert getattr(first.moments, name) == getattr(whole.moments, name)
    assert (first.below_min, first.above_max) == (whole.below_min, whole.above_max)
    # sums are floats added in another order: equal to rounding
    assert first.moments.total == pytest.approx(whole.moments.total, rel=1e-9, abs=1e-9)
    assert first.below_sum == pytest.approx(whole.below_sum)
    assert numeric_statistics(summary, first) == pytest.approx(numeric_statistics(summary, whole))


@settings(max_examples=40)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=300),
    cut=st.integers(0, 300),
)
def test_any_split_of_a_window_merges_back_to_the_same_counts(values, cut) -> None:
    summary = NumericReference.build(np.linspace(-5, 5, 101), fine_bins=16)
    array = np.asarray(values, dtype=np.float64)
    whole, first, second = NumericWindow(summary), NumericWindow(summary), NumericWindow(summary)
    whole.update(array)
    first.update(array[:cut])
    second.update(array[cut:])
    first.merge(second)
    assert np.array_equal(first.counts, whole.counts)
    assert (first.rows, first.below_min, first.above_max) == (
        whole.rows,
        whole.below_min,
        whole.above_max,
    )
    assert first.counts.sum() == whole.moments.count


def test_two_categorical_windows_of_halves_merge_into_the_window_of_all() -> None:
    values = ["a", "b", None, "new", "a", "other new", True, "b"] * 100
    summary = CategoricalReference.build(["a", "b", "c"])
    whole, first, second = (CategoricalWindow(summary) for _ in range(3))
    whole.update(pd.Series(values, dtype=object).astype(str).where(pd.notna(values), None))
    first.update(pa.array([v if v is None else str(v) for v in values[:333]]))
    second.update(pa.array([v if v is None else str(v) for v in values[333:]]))
    first.merge(second)
    assert first.to_dict() == whole.to_dict()


def test_summaries_round_trip_through_json() -> None:
    rng = np.random.default_rng(8)
    numeric = NumericReference.build(np.concatenate([rng.normal(0, 1, 3000), [np.nan, np.inf]]))
    window = NumericWindow(numeric)
    window.update(np.array([1e308, 1e308, -3.0, np.nan]))  # its sum of squares overflows
    numeric_again = NumericReference.from_dict(_json(numeric.to_dict()))
    window_again = NumericWindow.from_dict(_json(window.to_dict()), numeric_again)
    assert numeric_again.to_dict() == numeric.to_dict()
    assert window_again.to_dict() == window.to_dict()
    categorical = CategoricalReference.build(["a", "b", None])
    counts = CategoricalWindow(categorical)
    counts.update(["a", "z"])
    categorical_again = CategoricalReference.from_dict(_json(categorical.to_dict()))
    assert categorical_again.to_dict() == categorical.to_dict()
    again = CategoricalWindow.from_dict(_json(counts.to_dict()), categorical_again)
    assert again.to_dict() == counts.to_dict()


def test_garbage_summaries_are_refused() -> None:
    summary = NumericReference.build([1.0, 2.0])
    with pytest.raises(InvalidInput, match="numeric reference"):
        NumericReference.from_dict({"kind": "numeric", "edges": [1.0], "counts": [1]})
    with pytest.raises(InvalidInput, match="numeric window"):
        NumericWindow.from_dict({"counts": [1, 2]}, summary)
    with pytest.raises(InvalidInput, match="categorical reference"):
        CategoricalReference.from_dict({"kind": "categorical", "categories": [1], "counts": [1]})
    other = NumericWindow(NumericReference.build([1.0, 2.0, 3.0]))
    with pytest.raises(InvalidInput, match="different references"):
        NumericWindow(summary).merge(other)
    with pytest.raises(InvalidInput, match="NumericWindow"):
        NumericWindow(summary).merge("window")  # type: ignore[arg-type]


# --- edge cases ---------------------------------------------------------------------------


def test_a_constant_reference_flags_any_move_in_its_own_units() -> None:
    summary = NumericReference.build(np.full(100, 5.0))
    same, moved = NumericWindow(summary), NumericWindow(summary)
    same.update(np.full(50, 5.0))
    moved.update(np.full(50, 6.0))
    assert not judge("x", summary, same).drifted
    feature = judge("x", summary, moved)
    assert feature.drifted and feature.wasserstein == pytest.approx(1.0)
    assert feature.integrity["above_max"] == 50


def test_an_all_null_reference_column_gives_no_verdict() -> None:
    summary = NumericReference.build(np.full(10, np.nan))
    window = NumericWindow(summary)
    window.update([1.0, 2.0])
    feature = judge("x", summary, window)
    assert (feature.drifted, feature.reasons, feature.ks) == (False, ("no reference values",), None)
    assert _json(feature.to_dict())["psi"] is None


def test_empty_and_all_null_windows_give_no_verdict() -> None:
    summary = NumericReference.build(np.arange(10.0))
    empty, nulls = NumericWindow(summary), NumericWindow(summary)
    empty.update(np.array([]))
    nulls.update([np.nan, np.nan])
    assert judge("x", summary, empty).reasons == ("no rows",)
    assert judge("x", summary, nulls).reasons == ("no values",)
    assert judge("x", summary, nulls).null_rate == 1.0
    categories = CategoricalReference.build(["a"])
    window = CategoricalWindow(categories)
    window.update([None, None])
    assert judge("c", categories, window).reasons == ("no values",)


def test_infinities_are_counted_apart_and_one_row_works() -> None:
    summary = NumericReference.build([1.0, 2.0, np.inf, -np.inf, np.nan])
    assert (summary.moments.count, summary.moments.nonfinite, summary.moments.nulls) == (2, 2, 1)
    window = NumericWindow(summary)
    window.update([np.inf])
    window.update([1.5])
    feature = judge("x", summary, window)
    assert feature.integrity["nonfinite"] == 1 and feature.current_rows == 2
    assert feature.ks is not None and not feature.drifted


def test_huge_values_and_subnormals_stay_json_safe() -> None:
    huge = NumericReference.build([1e308, -1e308, 0.0, 1e307])
    window = NumericWindow(huge)
    window.update([1.7e308, -1.7e308, 5.0])
    document = _json(judge("x", huge, window).to_dict())
    assert document["kind"] == "numeric"
    tiny = NumericReference.build(np.array([5e-324, 1e-320, 2e-310, 0.0]))
    assert tiny.edges.size == 4
    small = NumericWindow(tiny)
    small.update(np.array([5e-324, 1e-320]))
    exact = ks_2samp([5e-324, 1e-320, 2e-310, 0.0], [5e-324, 1e-320]).statistic
    assert judge("x", tiny, small).ks == pytest.approx(exact) == 0.25


def test_booleans_and_strings_with_none_are_categories() -> None:
    flags = CategoricalReference.build(np.array([True, False, True]))
    assert set(flags.categories) == {"true", "false"}
    window = CategoricalWindow(flags)
    window.update(pd.Series([True, None, False], dtype=object))
    assert window.nulls == 1 and window.counts.sum() == 2
    names = CategoricalReference.build(["a", None, "b", None])
    assert names.nulls == 2 and names.rows == 4


def test_unseen_categories_are_named_most_frequent_first() -> None:
    summary = CategoricalReference.build(["a", "b"] * 500)
    window = CategoricalWindow(summary)
    window.update(["a"] * 900 + ["new"] * 60 + ["newer"] * 40)
    feature = judge("c", summary, window)
    assert feature.unseen == ("new", "newer") and feature.unseen_share == pytest.approx(0.1)
    assert feature.drifted and "unseen_share" in feature.reasons


def test_a_tiny_but_significant_shift_at_100k_rows_is_not_drift() -> None:
    """The p-value alone would flag it; the effect size (0.02 sd) says it does not matter."""
    rng = np.random.default_rng(9)
    summary = NumericReference.build(rng.normal(0, 1, 200_000))
    window = NumericWindow(summary)
    window.update(rng.normal(0.03, 1, 200_000))
    feature = judge("x", summary, window)
    assert feature.ks_pvalue is not None and feature.ks_pvalue < 0.01
    assert not feature.drifted and feature.reasons == ()
    stricter = DriftThresholds().with_(wasserstein=0.01)
    assert judge("x", summary, window, stricter).reasons == ("wasserstein",)


# --- drift() on every kind of input -------------------------------------------------------


def _frames(rows: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(10)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 1, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
            "member": rng.random(rows) < 0.3,
        }
    )
    current = reference.copy()
    current["age"] = rng.normal(46, 10, rows)  # +0.6 sd
    current["city"] = rng.choice(["paris", "lyon", "nice", "brest"], rows)
    return reference, current


def test_drift_on_dataframes_flags_exactly_the_shifted_columns() -> None:
    reference, current = _frames()
    report = drift(reference, current)
    assert report.drifted == ["age", "city"]
    assert report.features["income"].kind == "numeric"
    assert report.features["member"].kind == "categorical"
    document = _json(report.to_dict())
    assert set(document) == {"features", "multivariate", "drifted"}
    age = document["features"]["age"]
    for key in ("drifted", "psi", "ks", "ks_pvalue", "wasserstein"):
        assert key in age
    for key in ("drifted", "psi", "chi2", "chi2_pvalue", "js", "unseen"):
        assert key in document["features"]["city"]
    assert document["features"]["city"]["unseen"] == ["brest"]
    assert len(age["histogram"]) == 22  # below, 20 reference quantile bins, above
    assert sum(bin_["reference"] for bin_ in age["histogram"]) == pytest.approx(1.0)
    assert set(document["multivariate"]) >= {"reconstruction_error", "reference", "upper"}


def test_drift_on_arrow_tables_and_parquet_files_and_folders(tmp_path: Path) -> None:
    reference, current = _frames()
    expected = drift(reference, current).to_dict()
    reference_table = pa.Table.from_pandas(reference, preserve_index=False)
    current_table = pa.Table.from_pandas(current, preserve_index=False)
    assert drift(reference_table, current_table).to_dict() == expected
    pq.write_table(reference_table, tmp_path / "reference.parquet")
    folder = tmp_path / "window"
    folder.mkdir()
    pq.write_table(current_table.slice(0, 700), folder / "part-0.parquet")
    pq.write_table(current_table.slice(700), folder / "part-1.parquet")
    from_files = drift(tmp_path / "reference.parquet", str(folder))
    assert from_files.drifted == expected["drifted"]
    assert from_files.features["age"].ks == pytest.approx(expected["features"]["age"]["ks"])
    assert from_files.features["city"].current_rows == 2000


def test_drift_takes_columns_thresholds_per_feature_and_declared_categories() -> None:
    reference, current = _frames()
    report = drift(
        reference,
        current,
        ["age", "income"],
        thresholds={"age": DriftThresholds(wasserstein=5.0, psi=5.0)},
        categorical=["income"],
    )
    assert list(report.features) == ["age", "income"] and report.drifted == []
    assert report.features["income"].kind == "categorical"
    assert report.to_dict()["multivariate"]["drifted"] is False


def test_a_column_numeric_on_one_side_and_text_on_the_other_is_a_type_mismatch() -> None:
    reference, current = _frames(300)
    current["age"] = current["age"].astype(str)
    feature = drift(reference, current).features["age"]
    assert feature.drifted and feature.reasons == ("type mismatch",)
    assert feature.problem is not None and "numeric" in feature.problem
    assert feature.current_rows == 300 and feature.ks is None


def test_an_all_null_current_column_and_a_declared_categorical_with_nan() -> None:
    reference, current = _frames(400)
    current["age"] = None  # Arrow reads an all-None column as type null
    current["income"] = np.where(np.arange(400) % 2, np.nan, 7.0)
    report = drift(reference.assign(income=7.0), current, categorical=["income"])
    assert report.features["age"].reasons == ("no values",)
    assert report.features["age"].null_rate == 1.0
    income = report.features["income"]
    assert income.kind == "categorical" and income.null_rate == 0.5 and not income.drifted


def test_the_facade_names_monitoring() -> None:
    reference, current = _frames(200)
    assert ll.monitoring.drift(reference, current).features["age"].current_rows == 200


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"psi": math.nan},
        {"wasserstein": math.inf},
        {"js": 0.0},
        {"unseen_share": -1.0},
        {"p_value": 1.0},
        {"p_value": True},
        {"psi": "0.1"},
    ],
)
def test_bad_thresholds_are_refused(changes: dict) -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        DriftThresholds(**changes)


def test_bad_drift_arguments_are_refused(tmp_path: Path) -> None:
    reference, current = _frames(200)
    cases = [
        ((42, current), {}, "reference must be"),
        ((reference, [1, 2]), {}, "current must be"),
        ((reference, str(tmp_path / "missing.parquet")), {}, "no such file"),
        ((reference, current, ["nope"]), {}, "unknown column 'nope'"),
        ((reference, current, "age"), {}, "list of column names"),
        ((reference, current, []), {}, "columns is empty"),
        ((reference, current), {"thresholds": {"nope": DriftThresholds()}}, "'nope'"),
        ((reference, current), {"thresholds": {"age": 0.1}}, "must be DriftThresholds"),
        ((reference, current), {"thresholds": 0.1}, "thresholds must be"),
        ((reference, current), {"categorical": ["nope"]}, "'nope'"),
        ((reference, pd.DataFrame({"other": [1.0]})), {}, "no column in common"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(InvalidInput, match=message):
            drift(*args, **kwargs)
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(InvalidInput, match="not readable as Parquet"):
        drift(reference, tmp_path / "text.parquet")
    with pytest.raises(InvalidInput, match="unknown threshold 'psy'"):
        DriftThresholds().with_(psy=0.2)


def test_bad_values_are_refused_by_the_summaries() -> None:
    with pytest.raises(InvalidInput, match="numbers"):
        NumericReference.build(np.array(["a", "b"]))
    with pytest.raises(InvalidInput, match="numbers"):
        NumericReference.build("12")
    with pytest.raises(InvalidInput, match="fine_bins"):
        NumericReference.build([1.0], fine_bins=1)
    with pytest.raises(InvalidInput, match="numbers"):
        NumericWindow(NumericReference.build([1.0])).update(np.array(["x"], dtype=object))
    with pytest.raises(InvalidInput, match="NumericReference"):
        NumericWindow("reference")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="array"):
        CategoricalReference.build("abc")
    with pytest.raises(InvalidInput, match="one column"):
        CategoricalReference.build([1, "a", object()])
    with pytest.raises(InvalidInput, match="max_categories"):
        CategoricalReference.build(["a"], max_categories=0)
    summary = NumericReference.build([1.0, 2.0])
    with pytest.raises(InvalidInput, match="another reference"):
        judge("x", NumericReference.build([1.0]), NumericWindow(summary))
    with pytest.raises(InvalidInput, match="thresholds must be"):
        judge("x", summary, NumericWindow(summary), 0.1)  # type: ignore[arg-type]


def test_a_batch_larger_than_one_sort_slice_counts_as_the_same_values_fed_in_pieces() -> None:
    from loopline.monitoring._numeric import SORT_ROWS

    rng = np.random.default_rng(4)
    reference = NumericReference.build(rng.normal(size=5000))
    values = rng.normal(0.3, 1.5, 2 * SORT_ROWS + 77)
    values[::13] = np.nan
    values[::17] = np.inf
    whole, pieces = NumericWindow(reference), NumericWindow(reference)
    whole.update(values)
    for start in range(0, values.size, 1000):
        pieces.update(values[start : start + 1000])

    assert np.array_equal(whole.counts, pieces.counts)
    assert (whole.below_min, whole.above_max, whole.rows) == (
        pieces.below_min,
        pieces.above_max,
        pieces.rows,
    )
    assert whole.moments.count == pieces.moments.count
    assert whole.moments.nulls == pieces.moments.nulls
    assert whole.moments.nonfinite == pieces.moments.nonfinite
    assert math.isclose(whole.moments.total, pieces.moments.total, rel_tol=1e-9)
