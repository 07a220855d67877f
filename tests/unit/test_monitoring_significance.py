"""A/B and canary significance: the z-test and Welch's test against reference formulas and
scipy, false alarms near alpha when nothing differs, samples_needed giving the asked power,
degenerate arms, and bad input."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from loopline.errors import InvalidInput
from loopline.monitoring._significance import compare_versions


def test_the_z_test_matches_the_reference_formula() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(800) < 0.70, rng.random(1100) < 0.75
    result = compare_versions(a, b, metric="accuracy", alpha=0.1)
    pa, pb = a.mean(), b.mean()
    pooled = (a.sum() + b.sum()) / (len(a) + len(b))
    z = (pb - pa) / math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    assert result.statistic == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    half = stats.norm.ppf(0.95) * math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))
    assert result.confidence_interval == pytest.approx((pb - pa - half, pb - pa + half))
    assert (result.count_a, result.count_b) == (800, 1100) and result.confidence == 0.9
    assert result.difference == pytest.approx(pb - pa) and result.test == "two-proportion z-test"


@pytest.mark.parametrize("metric", ["absolute_error", "squared_error"])
def test_welch_matches_scipy(metric: str) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1.0, 300), rng.exponential(1.2, 180)
    result = compare_versions(a, b, metric=metric, alpha=0.01)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(confidence_level=0.99)
    assert result.confidence_interval == pytest.approx((interval.low, interval.high))
    assert result.test == "Welch's t-test"


def test_better_follows_the_direction_of_the_metric() -> None:
    rng = np.random.default_rng(2)
    right_more_often = compare_versions(
        rng.random(3000) < 0.7, rng.random(3000) < 0.8, metric="accuracy"
    )
    assert right_more_often.better == "b" and right_more_often.significant
    smaller_errors = compare_versions(
        rng.exponential(1.0, 2000), rng.exponential(0.8, 2000), metric="absolute_error"
    )
    assert (
        smaller_errors.better == "b"
        and smaller_errors.difference is not None
        and smaller_errors.difference < 0
    )
    larger_errors = compare_versions(
        rng.exponential(0.8, 2000), rng.exponential(1.0, 2000), metric="squared_error"
    )
    assert larger_errors.better == "a"
    same = compare_versions(
        rng.random(200) < 0.7, rng.random(200) < 0.7, metric="accuracy", alpha=1e-6
    )
    assert same.better is None and not same.significant


def test_false_alarms_stay_near_alpha_when_nothing_differs() -> None:
    rng = np.random.default_rng(3)
    repetitions = 400
    proportions = sum(
        compare_versions(
            rng.random(500) < 0.7, rng.random(700) < 0.7, metric="accuracy"
        ).significant
        for _ in range(repetitions)
    )
    errors = sum(
        compare_versions(
            rng.exponential(1.0, 300), rng.exponential(1.0, 200), metric="absolute_error"
        ).significant
        for _ in range(repetitions)
    )
    assert 0.015 <= proportions / repetitions <= 0.09
    assert 0.015 <= errors / repetitions <= 0.09


def test_samples_needed_give_the_power_asked_for_proportions() -> None:
    rng = np.random.default_rng(4)
    pilot = compare_versions(
        rng.random(400) < 0.8, rng.random(400) < 0.8, metric="accuracy", minimum_effect=0.04
    )
    assert pilot.samples_needed is not None and pilot.minimum_effect == 0.04
    rows = pilot.samples_needed["a"]
    assert pilot.samples_needed["b"] == rows and 1000 < rows < 3000
    assert pilot.samples_remaining == {"a": rows - 400, "b": rows - 400}
    base = pilot.mean_a
    assert base is not None
    detected = sum(
        compare_versions(
            rng.random(rows) < base, rng.random(rows) < base + 0.04, metric="accuracy"
        ).significant
        for _ in range(400)
    )
    assert 0.72 <= detected / 400 <= 0.88


def test_samples_needed_give_the_power_asked_for_means() -> None:
    rng = np.random.default_rng(5)
    pilot = compare_versions(
        rng.normal(5, 1, 200),
        rng.normal(5, 1, 200),
        metric="absolute_error",
        minimum_effect=0.2,
        power=0.9,
    )
    assert pilot.samples_needed is not None
    rows = pilot.samples_needed["a"]
    closed_form = (
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.9)) ** 2 * 2 / 0.2**2
    )  # sd 1 in each arm
    assert rows == pytest.approx(closed_form, rel=0.25)
    detected = sum(
        compare_versions(
            rng.normal(5, 1, rows), rng.normal(4.8, 1, rows), metric="absolute_error"
        ).significant
        for _ in range(400)
    )
    assert 0.84 <= detected / 400 <= 0.96


def test_samples_needed_keep_the_canary_ratio_and_default_to_the_observed_difference() -> None:
    rng = np.random.default_rng(6)
    a = np.r_[np.ones(720), np.zeros(180)]  # 0.80 on 900 rows
    b = np.r_[np.ones(78), np.zeros(22)]  # 0.78 on a canary of 100
    result = compare_versions(a, b, metric="accuracy")
    assert (
        result.samples_needed is not None and result.p_value is not None and result.p_value >= 0.05
    )
    assert result.minimum_effect == pytest.approx(abs(result.mean_b - result.mean_a))  # type: ignore[operator]
    assert result.samples_needed["a"] == pytest.approx(9 * result.samples_needed["b"], rel=0.01)
    significant = compare_versions(
        rng.random(5000) < 0.7, rng.random(5000) < 0.8, metric="accuracy"
    )
    assert significant.samples_needed is None
    assert significant.samples_reason == "already significant: no more rows needed"


@pytest.mark.parametrize(
    ("a", "b", "metric", "reason"),
    [
        ([], [1, 0, 1], "accuracy", "arm a has no rows"),
        ([1, 0, 1], [], "accuracy", "arm b has no rows"),
        ([1, 0], [1], "accuracy", "arm b has 1 row"),
        ([1, 1, 1], [1, 1], "accuracy", "every outcome in both arms is 1"),
        ([0, 0], [0, 0, 0], "accuracy", "every outcome in both arms is 0"),
        ([0.5, 0.5], [0.7, 0.7], "absolute_error", "no variation within either arm"),
        ([2.0], [1.0, 3.0], "squared_error", "arm a has 1 row"),
    ],
)
def test_degenerate_arms_give_no_p_value_and_a_reason(
    a: list[float], b: list[float], metric: str, reason: str
) -> None:
    result = compare_versions(a, b, metric=metric, minimum_effect=0.1)
    assert result.p_value is None and result.better is None and not result.significant
    assert result.reason is not None and reason in result.reason
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["p_value"] is None and payload["count_a"] == len(a)


def test_tiny_errors_do_not_underflow_welchs_degrees_of_freedom() -> None:
    a, b = [0.0, 1e-150, 2e-150], [0.0, 3e-150, 1e-150, 5e-150]
    result = compare_versions(a, b, metric="absolute_error")
    reference = stats.ttest_ind(np.array(b) * 1e150, np.array(a) * 1e150, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue)


def test_to_dict_is_json_ready() -> None:
    rng = np.random.default_rng(7)
    result = compare_versions(rng.random(50) < 0.6, rng.random(60) < 0.5, metric="accuracy")
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(payload) >= {
        "difference",
        "confidence_interval",
        "p_value",
        "better",
        "samples_needed",
    }
    assert isinstance(payload["confidence_interval"], list)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"metric": "precision"}, "unknown metric 'precision'"),
        ({"metric": None}, "unknown metric None"),
        ({"metric": "accuracy", "alpha": 0}, "alpha must lie strictly between 0 and 1"),
        ({"metric": "accuracy", "alpha": 1.5}, "alpha must lie strictly"),
        ({"metric": "accuracy", "alpha": float("nan")}, "alpha must lie strictly"),
        ({"metric": "accuracy", "alpha": True}, "alpha must be a number"),
        ({"metric": "accuracy", "alpha": "0.05"}, "alpha must be a number"),
        ({"metric": "accuracy", "power": 1}, "power must lie strictly"),
        ({"metric": "accuracy", "minimum_effect": 0}, "minimum_effect must be a positive"),
        (
            {"metric": "accuracy", "minimum_effect": float("inf")},
            "minimum_effect must be a positive",
        ),
        ({"metric": "accuracy", "minimum_effect": 1.0}, "must be below 1"),
        ({"metric": "accuracy", "minimum_effect": "big"}, "minimum_effect must be a positive"),
    ],
)
def test_bad_settings_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        compare_versions([1, 0, 1], [0, 1, 1], **arguments)


@pytest.mark.parametrize(
    ("a", "metric", "message"),
    [
        ([1, 2, 0], "accuracy", "must be 0/1 correctness"),
        ([1, float("nan")], "accuracy", "NaN or infinite"),
        ([0.5, -0.1], "absolute_error", r"must be absolute errors \(>= 0\)"),
        ([0.5, float("inf")], "squared_error", "NaN or infinite"),
        (["x", "y"], "absolute_error", "must hold numbers"),
        ([[1, 0], [0, 1]], "accuracy", "one-dimensional"),
        ("1010", "accuracy", "must be an array"),
        (None, "accuracy", "must be an array"),
    ],
)
def test_bad_outcomes_are_refused(a: Any, metric: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        compare_versions(a, [1, 0, 1], metric=metric)
    assert "the outcomes of a" in str(caught.value)


outcomes_01 = st.lists(st.integers(0, 1), max_size=30)
errors = st.lists(st.floats(0, 1e6, allow_nan=False, allow_infinity=False), max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    a=outcomes_01,
    b=outcomes_01,
    alpha=st.floats(0.001, 0.5),
    effect=st.none() | st.floats(0.01, 0.5),
)
def test_any_small_accuracy_arms_give_a_json_ready_result(
    a: list[int], b: list[int], alpha: float, effect: float | None
) -> None:
    result = compare_versions(a, b, metric="accuracy", alpha=alpha, minimum_effect=effect)
    json.dumps(result.to_dict(), allow_nan=False)
    assert (result.p_value is None) == (result.reason is not None)
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0
        low, high = result.confidence_interval  # type: ignore[misc]
        assert low <= result.difference <= high  # type: ignore[operator]
    if result.samples_needed is not None:
        assert min(result.samples_needed.values()) >= 1


@settings(max_examples=150, deadline=None)
@given(a=errors, b=errors, power=st.floats(0.5, 0.99))
def test_any_small_error_arms_give_a_json_ready_result(
    a: list[float], b: list[float], power: float
) -> None:
    result = compare_versions(a, b, metric="squared_error", power=power)
    json.dumps(result.to_dict(), allow_nan=False)
    assert (result.p_value is None) == (result.reason is not None)
    assert (result.samples_needed is None) == (result.samples_reason is not None)
