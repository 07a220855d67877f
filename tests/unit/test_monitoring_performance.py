"""Monitored performance: realised metrics over labelled rows (equal to sklearn's, labels of
another type than the predictions, the delta to a stored evaluation) and CBPE's estimate
before labels (against the realised values on calibrated and miscalibrated models)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopline.errors import InvalidInput
from loopline.monitoring._estimate import calibrate, estimate_performance, expected_roc_auc
from loopline.monitoring._performance import realised_performance


def json_safe(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload after a strict JSON round trip (fails on NaN, infinity, numpy types)."""
    return json.loads(json.dumps(payload, allow_nan=False))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Breast cancer: labels, predictions and probabilities of a logistic regression."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return y_test, model.predict(x_test), model.predict_proba(x_test), list(model.classes_)


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    """Digits (10 classes): a logistic regression's probabilities on a reference half and
    a window half, both labelled."""
    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.6, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.05))
    model.fit(x_train, y_train)
    x_ref, x_win, y_ref, y_win = train_test_split(x_rest, y_rest, test_size=0.5, random_state=1)
    return {
        "classes": list(model.classes_),
        "reference": (y_ref, model.predict_proba(x_ref)),
        "window": (y_win, model.predict(x_win), model.predict_proba(x_win)),
    }


# --- realised performance --------------------------------------------------------------


def test_binary_metrics_equal_sklearns(cancer: tuple[Any, ...]) -> None:
    y, pred, proba, classes = cancer
    result = realised_performance("classification", y, pred, proba, classes)
    assert result.task == "binary" and result.rows == len(y) and result.positive_class == 1
    expected = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred),
        "recall": metrics.recall_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "roc_auc": metrics.roc_auc_score(y, proba[:, 1]),
        "pr_auc": metrics.average_precision_score(y, proba[:, 1]),
        "log_loss": metrics.log_loss(y, proba),
        "brier": metrics.brier_score_loss(y, proba[:, 1]),
    }
    assert result.metrics == pytest.approx(expected, abs=1e-12)
    assert result.reasons == {}


def test_float32_probabilities_give_log_loss_without_a_warning(cancer: tuple[Any, ...]) -> None:
    """An ONNX runtime's float32 probabilities sum to one only within float32 rounding:
    the log loss is computed on the rows rescaled, without sklearn's warning."""
    import warnings

    y, pred, proba, classes = cancer
    rounded = proba.astype(np.float32).astype(np.float64)
    assert not np.array_equal(rounded.sum(axis=1), np.ones(len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = realised_performance("classification", y, pred, rounded, classes)
    rescaled = rounded / rounded.sum(axis=1, keepdims=True)
    assert result.metrics["log_loss"] == pytest.approx(metrics.log_loss(y, rescaled), abs=1e-12)
    assert result.metrics["log_loss"] == pytest.approx(metrics.log_loss(y, proba), abs=1e-6)


def test_multiclass_metrics_equal_sklearns(digits: dict[str, Any]) -> None:
    y, pred, proba = digits["window"]
    result = realised_performance("classification", y, pred, proba, digits["classes"])
    assert result.task == "multiclass"
    expected = {
        "accuracy": metrics.accuracy_score(y, pred),
        "macro_f1": metrics.f1_score(y, pred, average="macro"),
        "weighted_f1": metrics.f1_score(y, pred, average="weighted"),
        "roc_auc": metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "log_loss": metrics.log_loss(y, proba),
    }
    assert result.metrics == pytest.approx(expected, abs=1e-12)


def test_regression_metrics_equal_sklearns() -> None:
    x, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(x[:300], y[:300]).predict(x[300:])
    result = realised_performance("regression", y[300:], pred)
    assert result.metrics["rmse"] == pytest.approx(metrics.root_mean_squared_error(y[300:], pred))
    assert result.metrics["mae"] == pytest.approx(metrics.mean_absolute_error(y[300:], pred))
    assert result.metrics["r2"] == pytest.approx(metrics.r2_score(y[300:], pred))
    assert result.classes is None and result.rows == len(pred)


def test_labels_as_text_or_bools_match_integer_classes(cancer: tuple[Any, ...]) -> None:
    y, pred, proba, classes = cancer
    reference = realised_performance("binary", y, pred, proba, classes).metrics
    as_text = np.array([str(v) for v in y], dtype=object)
    as_padded_floats = np.array([f" {float(v)} " for v in y], dtype=object)
    as_bools = y.astype(bool)
    as_bool_text = np.where(y == 1, "TRUE", "false")
    for labels in (as_text, as_padded_floats, as_bools, as_bool_text):
        assert realised_performance("binary", labels, pred, proba, classes).metrics == reference


def test_integer_labels_match_text_classes() -> None:
    result = realised_performance("classification", [0, 1, 2, 2], ["0", "1", "1", "2"])
    assert result.classes == ["0", "1", "2"]
    assert result.metrics["accuracy"] == pytest.approx(0.75)
    with_classes = realised_performance(
        "multiclass", [0, 1, 2, 2], ["0", "1", "1", "2"], None, ["0", "1", "2"]
    )
    assert with_classes.metrics == result.metrics


def test_inferred_classes_keep_a_label_never_predicted() -> None:
    result = realised_performance("classification", ["a", "b", "c"], ["a", "b", "b"])
    assert result.classes == ["a", "b", "c"] and result.task == "multiclass"
    assert result.metrics["accuracy"] == pytest.approx(2 / 3)


def test_labels_that_match_no_class_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"y_true holds values that match no class: \['maybe'\]"):
        realised_performance("binary", ["yes", "maybe"], ["yes", "no"], None, ["no", "yes"])
    with pytest.raises(InvalidInput, match="no value that matches a prediction"):
        realised_performance("classification", ["cat", "dog"], [0, 1])


def test_ambiguous_classes_match_exactly_only() -> None:
    # "1" and 1 are two classes of this model: the text "1" is the text class only
    labels = np.array(["1", 1, 0], dtype=object)
    result = realised_performance("multiclass", labels, [1, 1, 0], None, [0, 1, "1"])
    assert result.metrics["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(InvalidInput, match="match no class"):
        realised_performance("multiclass", ["1.0"], [1], None, [0, 1, "1"])


def test_delta_is_realised_minus_the_stored_evaluation(cancer: tuple[Any, ...]) -> None:
    y, pred, proba, classes = cancer
    stored = {"accuracy": 0.99, "f1": None, "roc_auc": 0.5, "latency_p50": 3.0}
    result = realised_performance("binary", y, pred, proba, classes, baseline=stored)
    assert result.delta["accuracy"] == pytest.approx(result.metrics["accuracy"] - 0.99)
    assert result.delta["roc_auc"] == pytest.approx(result.metrics["roc_auc"] - 0.5)
    assert result.delta["f1"] is None
    assert "latency_p50" not in result.delta and "precision" not in result.delta
    assert json_safe(result.to_dict())["baseline"]["accuracy"] == 0.99


def test_undefined_metrics_are_none_with_a_reason_never_nan() -> None:
    y = np.ones(20, dtype=int)
    pred = np.r_[np.ones(15, dtype=int), np.zeros(5, dtype=int)]
    proba = np.column_stack([np.linspace(0.1, 0.9, 20), np.linspace(0.9, 0.1, 20)])
    result = realised_performance("binary", y, pred, proba, [0, 1])
    assert result.metrics["roc_auc"] is None
    assert result.reasons["roc_auc"] == "the labels hold one class only"
    payload = json_safe(result.to_dict())
    assert all(v is None or math.isfinite(v) for v in payload["metrics"].values())
    three = realised_performance(
        "multiclass", [0, 1, 1], [0, 1, 2], np.full((3, 3), 1 / 3), [0, 1, 2]
    )
    assert three.metrics["roc_auc"] is None and "2 of 3 classes" in three.reasons["roc_auc"]
    without = realised_performance("binary", [0, 1], [0, 1], None, [0, 1])
    assert without.reasons["roc_auc"] == "no probabilities given"
    one_row = realised_performance("regression", [1.0], [2.0])
    assert one_row.metrics["r2"] is None and "2 labelled rows" in one_row.reasons["r2"]
    zero_label = realised_performance("regression", [0.0, 1.0], [0.5, 1.0])
    assert zero_label.metrics["mape"] is None and "is 0" in zero_label.reasons["mape"]


def test_a_window_without_labels_reports_every_metric_as_none() -> None:
    result = realised_performance("classification", [], [], np.zeros((0, 2)), ["no", "yes"])
    assert result.rows == 0 and result.task == "binary"
    assert set(result.metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
    }
    assert all(v is None for v in result.metrics.values())
    assert set(result.reasons.values()) == {"no labelled rows"}
    assert (
        json_safe(realised_performance("regression", [], []).to_dict())["metrics"]["rmse"] is None
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("ranking", [1], [1]), "unknown task 'ranking'"),
        ((None, [1], [1]), "unknown task None"),
        (("binary", [0, 1, 1], [0, 1]), "y_true has 3, y_pred has 2"),
        (("binary", "01", [0, 1]), "y_true must be an array"),
        (("binary", [[0, 1], [1, 0]], [0, 1]), "one-dimensional"),
        (("binary", [0, 1], [0, 1], [[0.5, 0.5], [np.nan, 0.5]], [0, 1]), "NaN or infinite"),
        (("binary", [0, 1], [0, 1], [[1.5, -0.5], [0.5, 0.5]], [0, 1]), r"must lie in \[0, 1\]"),
        (("binary", [0, 1], [0, 1], [[0.5, 0.6], [0.5, 0.5]], [0, 1]), "must sum to 1"),
        (("binary", [0, 1], [0, 1], [[0.2, 0.3, 0.5]] * 2, [0, 1]), "must have shape"),
        (("binary", [0, 1], [0, 1], [[0.5, 0.5]] * 2), "probabilities need classes"),
        (("binary", [0, 1, 2], [0, 1, 2], None, [0, 1, 2]), "task 'binary' needs 2 classes"),
        (("binary", [0, None], [0, 1], None, [0, 1]), "y_true holds 1 missing values"),
        (("binary", [0, np.nan], [0, 1], None, [0, 1]), "missing values"),
        (("binary", [0, 1], [0, 1], None, [1, 1]), "duplicates"),
        (("binary", [0, 1], [0, 1], None, [1]), "at least 2 classes"),
        (("binary", [0, 1], [0, 1], None, "01"), "classes must be a list"),
        (("classification", [1, 1], [1, 1]), "one class only"),
        (("regression", [1.0, np.inf], [1.0, 2.0]), "y_true holds 1 NaN or infinite"),
        (("regression", [1.0, np.nan], [1.0, 2.0]), "NaN or infinite"),
        (("regression", ["a", "b"], [1.0, 2.0]), "y_true must hold numbers"),
        (("regression", [1.0], [1.0], [[1.0]]), "for classification, not regression"),
    ],
)
def test_bad_input_is_refused_in_one_line(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        realised_performance(*arguments)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ([0.9], "must map metric names to numbers"),
        ({"accuracy": float("nan")}, "must be finite"),
        ({"accuracy": "high"}, "must be a number"),
        ({"accuracy": True}, "must be a number"),
        ({1: 0.5}, "names must be text"),
    ],
)
def test_a_bad_baseline_is_refused(baseline: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        realised_performance("binary", [0, 1], [0, 1], None, [0, 1], baseline=baseline)


# --- CBPE -------------------------------------------------------------------------------


def calibrated_binary(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a perfectly calibrated model and labels drawn from them."""
    positive = rng.beta(0.7, 0.7, rows)
    labels = (rng.random(rows) < positive).astype(int)
    return labels, np.column_stack([1 - positive, positive])


def test_cbpe_matches_the_realised_values_of_a_calibrated_binary_model() -> None:
    labels, proba = calibrated_binary(np.random.default_rng(7), 60_000)
    estimate = estimate_performance(proba, [0, 1])
    realised = realised_performance("binary", labels, proba.argmax(axis=1), proba, [0, 1])
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert estimate.metrics[name] == pytest.approx(realised.metrics[name], abs=0.01), name
    assert estimate.reliable is None and estimate.reason.startswith("calibration unknown")
    assert json_safe(estimate.to_dict())["method"] == "cbpe"


def test_cbpe_matches_the_realised_values_of_a_calibrated_multiclass_model() -> None:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([0.4, 0.6, 0.8, 1.0], 60_000)
    labels = (proba.cumsum(axis=1) < rng.random((60_000, 1))).sum(axis=1)
    estimate = estimate_performance(proba, ["a", "b", "c", "d"])
    names = np.array(["a", "b", "c", "d"])
    realised = realised_performance(
        "multiclass", names[labels], names[proba.argmax(axis=1)], proba, list(names)
    )
    assert estimate.task == "multiclass"
    for name in ("accuracy", "macro_f1", "weighted_f1", "roc_auc"):
        assert estimate.metrics[name] == pytest.approx(realised.metrics[name], abs=0.01), name


def test_calibration_data_brings_a_miscalibrated_estimate_closer() -> None:
    rng = np.random.default_rng(11)
    window_labels, window_truth = calibrated_binary(rng, 20_000)
    reference_labels, reference_truth = calibrated_binary(rng, 20_000)

    def overconfident(proba: np.ndarray) -> np.ndarray:
        positive = proba[:, 1] ** 3 / (proba[:, 1] ** 3 + proba[:, 0] ** 3)
        return np.column_stack([1 - positive, positive])

    window, reference = overconfident(window_truth), overconfident(reference_truth)
    realised = realised_performance("binary", window_labels, window.argmax(axis=1), window, [0, 1])
    raw = estimate_performance(window, [0, 1])
    calibrated = estimate_performance(window, [0, 1], calibration=(reference_labels, reference))
    for name in ("accuracy", "f1"):
        raw_error = abs(raw.metrics[name] - realised.metrics[name])
        calibrated_error = abs(calibrated.metrics[name] - realised.metrics[name])
        assert calibrated_error < raw_error and calibrated_error < 0.01, name
    assert calibrated.reliable is True and calibrated.calibration is not None
    assert calibrated.calibration["calibrated"] is True
    assert calibrated.calibration["ece_raw"] > 0.05 > calibrated.calibration["ece_calibrated"]


def test_a_calibration_fitted_once_gives_the_same_estimate() -> None:
    rng = np.random.default_rng(12)
    labels, proba = calibrated_binary(rng, 4000)
    skewed = np.column_stack([1 - proba[:, 1] ** 2, proba[:, 1] ** 2])
    fitted = calibrate(labels[1000:], skewed[1000:], [0, 1])
    once = estimate_performance(skewed[:1000], [0, 1], calibration=fitted)
    each_time = estimate_performance(
        skewed[:1000], [0, 1], calibration=(labels[1000:], skewed[1000:])
    )
    assert once == each_time and fitted.calibrated
    with pytest.raises(InvalidInput, match=r"fitted for classes \[0, 1\], not \['no', 'yes'\]"):
        estimate_performance(skewed[:1000], ["no", "yes"], calibration=fitted)


def test_a_calibrated_model_keeps_its_probabilities() -> None:
    rng = np.random.default_rng(5)
    labels, proba = calibrated_binary(rng, 20_000)
    result = estimate_performance(proba[:5000], [0, 1], calibration=(labels[5000:], proba[5000:]))
    assert result.reliable is True and result.calibration is not None
    assert result.calibration["calibrated"] is False and result.calibration["ece_raw"] < 0.05
    assert result.metrics == estimate_performance(proba[:5000], [0, 1]).metrics


def test_cbpe_on_a_real_multiclass_model_with_calibration(digits: dict[str, Any]) -> None:
    y, pred, proba = digits["window"]
    realised = realised_performance("multiclass", y, pred, proba, digits["classes"])
    estimate = estimate_performance(
        proba, digits["classes"], calibration=digits["reference"], predictions=pred
    )
    raw = estimate_performance(proba, digits["classes"], predictions=pred)
    assert estimate.task == "multiclass" and estimate.reliable is True
    assert abs(estimate.metrics["accuracy"] - realised.metrics["accuracy"]) < abs(
        raw.metrics["accuracy"] - realised.metrics["accuracy"]
    )
    assert estimate.metrics["accuracy"] == pytest.approx(realised.metrics["accuracy"], abs=0.04)
    assert estimate.metrics["roc_auc"] == pytest.approx(realised.metrics["roc_auc"], abs=0.02)
    assert estimate.metrics["macro_f1"] == pytest.approx(realised.metrics["macro_f1"], abs=0.05)


def test_too_little_calibration_data_with_miscalibration_is_unreliable() -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000, C=0.01).fit(
        x, y
    )  # heavily regularised: underconfident
    proba = model.predict_proba(x)
    result = estimate_performance(proba, list(model.classes_), calibration=(y[:60], proba[:60]))
    assert result.reliable is False
    assert "no calibrator could be fitted (60 calibration rows, 100 needed)" in result.reason
    assert result.calibration is not None and result.calibration["unfit"] is not None


def test_a_window_outside_the_calibration_data_is_unreliable() -> None:
    rng = np.random.default_rng(2)
    positive = rng.uniform(0.0, 0.3, 5000)  # the reference saw only low probabilities
    labels = (rng.random(5000) < positive).astype(int)
    reference = np.column_stack([1 - positive, positive])
    high = rng.uniform(0.7, 1.0, 1000)
    result = estimate_performance(
        np.column_stack([1 - high, high]), [0, 1], calibration=(labels, reference)
    )
    assert result.reliable is False
    assert "100% of the window's rows" in result.reason and "over 5 times sparser" in result.reason
    assert result.calibration is not None and result.calibration["uncovered_share"] == 1.0


def test_expected_roc_auc_of_certain_labels_is_sklearns_roc_auc() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 20, 3000) / 20  # many ties
    labels = (rng.random(3000) < score).astype(float)
    assert expected_roc_auc(score, labels) == pytest.approx(metrics.roc_auc_score(labels, score))


def test_given_predictions_decide_the_estimate() -> None:
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    by_highest = estimate_performance(proba, ["no", "yes"]).metrics["accuracy"]
    assert by_highest == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    everything_yes = estimate_performance(proba, ["no", "yes"], predictions=["yes"] * 3)
    assert everything_yes.metrics["accuracy"] == pytest.approx((0.1 + 0.4 + 0.8) / 3)
    assert everything_yes.metrics["precision"] == pytest.approx((0.1 + 0.4 + 0.8) / 3)
    nothing_yes = estimate_performance(proba, ["no", "yes"], predictions=["no"] * 3)
    assert (
        nothing_yes.metrics["precision"] is None
        and "predicted as" in nothing_yes.reasons["precision"]
    )


def test_an_empty_window_and_one_sided_probabilities_give_none_with_reasons() -> None:
    empty = estimate_performance(np.zeros((0, 3)), [0, 1, 2])
    assert empty.rows == 0 and set(empty.reasons.values()) == {"no rows"}
    assert all(v is None for v in empty.metrics.values())
    sure = estimate_performance([[1.0, 0.0], [1.0, 0.0]], [0, 1])
    assert (
        sure.metrics["roc_auc"] is None
        and sure.reasons["roc_auc"] == "the probabilities expect one class only"
    )
    assert json_safe(sure.to_dict())["metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("arguments", "keywords", "message"),
    [
        (([[0.5, 0.5]], [0]), {}, "at least 2 classes"),
        (([[0.5, 0.5]], [0, 0]), {}, "duplicates"),
        (([[0.5, 0.5]], None), {}, "classes must be a list"),
        (([[0.5, 0.7]], [0, 1]), {}, "must sum to 1"),
        (([[1.2, -0.2]], [0, 1]), {}, r"must lie in \[0, 1\]"),
        (([[np.inf, 0.5]], [0, 1]), {}, "NaN or infinite"),
        (([[0.5, 0.5]], [0, 1, 2]), {}, "must have shape"),
        (("0.5", [0, 1]), {}, "must be an array of probabilities"),
        (([[0.5, 0.5]], [0, 1]), {"predictions": [0, 1]}, "predictions has 2, probabilities has 1"),
        (
            ([[0.5, 0.5]], [0, 1]),
            {"predictions": [7]},
            "predictions holds values that match no class",
        ),
        (([[0.5, 0.5]], [0, 1]), {"calibration": [0, 1, 0]}, "calibration must be a pair"),
        (
            ([[0.5, 0.5]], [0, 1]),
            {"calibration": ([0, 1], [[0.5, 0.5]])},
            "calibration_labels has 2",
        ),
        (
            ([[0.5, 0.5]], [0, 1]),
            {"calibration": ([], np.zeros((0, 2)))},
            "calibration data has no rows",
        ),
        (
            ([[0.5, 0.5]], [0, 1]),
            {"calibration": (["x"], [[0.5, 0.5]])},
            "calibration labels holds values that match",
        ),
        (
            ([[0.5, 0.5]], [0, 1]),
            {"calibration": ([1], [[0.5, 0.9]])},
            "calibration probabilities must sum",
        ),
    ],
)
def test_bad_estimate_input_is_refused(
    arguments: tuple[Any, ...], keywords: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        estimate_performance(*arguments, **keywords)


@settings(max_examples=100, deadline=None)
@given(
    labels=st.lists(st.integers(0, 2), min_size=1, max_size=40),
    shift=st.integers(0, 2),
)
def test_labels_as_text_give_the_same_metrics_as_integers(labels: list[int], shift: int) -> None:
    predictions = [(label + shift) % 3 if i % 2 else label for i, label in enumerate(labels)]
    as_integers = realised_performance("multiclass", labels, predictions, None, [0, 1, 2])
    as_text = realised_performance(
        "multiclass", [str(v) for v in labels], predictions, None, [0, 1, 2]
    )
    assert as_text.metrics == as_integers.metrics


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(
        st.lists(st.floats(0, 1, allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=30
    ).filter(lambda rows: all(sum(row) > 1e-6 for row in rows)),
    with_calibration=st.booleans(),
)
def test_any_probabilities_give_a_json_ready_estimate(
    weights: list[list[float]], with_calibration: bool
) -> None:
    proba = np.array(weights) / np.array(weights).sum(axis=1, keepdims=True)
    labels = np.array(["a", "b", "c"])[np.arange(len(proba)) % 3]
    calibration = (labels, proba) if with_calibration else None
    result = estimate_performance(proba, ["a", "b", "c"], calibration=calibration)
    payload = json_safe(result.to_dict())
    for name, value in payload["metrics"].items():
        assert (value is None) == (name in payload["reasons"])
        assert value is None or -1e-9 <= value <= 1 + 1e-9
