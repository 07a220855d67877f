"""evaluate_predictor: metrics equal sklearn's, slices, the slice parser, fairness,
calibration, robustness, latency, and a JSON-ready report."""

from __future__ import annotations

import json
import math
import operator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopline.errors import InvalidFilter, InvalidInput
from loopline.evaluation.compute import evaluate_predictor, slice_mask

FAST = {"latency_repeats": 5}


class Sklearn:
    """The Predictor interface over a fitted sklearn estimator and its feature columns."""

    def __init__(self, estimator: Any, columns: list[str]) -> None:
        self.estimator, self.columns = estimator, columns

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(data[self.columns]))

    @property
    def has_proba(self) -> bool:
        return hasattr(self.estimator, "predict_proba")

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(data[self.columns]))

    @property
    def classes(self) -> list[Any] | None:
        return list(self.estimator.classes_) if hasattr(self.estimator, "classes_") else None


class FromColumns:
    """A 'model' that reads its predictions (and P(positive)) from columns of the data."""

    def __init__(self, pred: str, proba: str | None = None, classes: list[Any] | None = None):
        self.pred, self.proba, self._classes = pred, proba, classes

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return data[self.pred].to_numpy()

    @property
    def has_proba(self) -> bool:
        return self.proba is not None

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        assert self.proba is not None
        p = data[self.proba].to_numpy(dtype=float)
        return np.column_stack([1 - p, p])

    @property
    def classes(self) -> list[Any] | None:
        return self._classes


class Threshold:
    """Predicts 1 where column x exceeds a threshold (a constant model with threshold=inf)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return (data["x"].to_numpy() > self.threshold).astype(int)

    has_proba = False

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    @property
    def classes(self) -> list[Any] | None:
        return [0, 1]


def _with_groups(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    frame["segment"] = rng.choice(["gold", "silver", "bronze"], size=len(frame))
    frame["sex"] = rng.choice(["f", "m"], size=len(frame))
    return frame


def _fit(frame: pd.DataFrame, estimator: Any) -> Sklearn:
    columns = [c for c in frame.columns if c not in ("target", "segment", "sex")]
    estimator.fit(frame[columns], frame["target"])
    return Sklearn(estimator, columns)


@pytest.fixture(scope="module")
def cancer() -> tuple[Sklearn, pd.DataFrame]:
    frame = _with_groups(load_breast_cancer(as_frame=True).frame)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.05))
    return _fit(frame, model), frame


@pytest.fixture(scope="module")
def cancer_report(cancer: tuple[Sklearn, pd.DataFrame]) -> dict[str, Any]:
    model, frame = cancer
    slices = ["segment", "segment == 'gold' and sex != 'm'", "mean radius", "target == 1"]
    return evaluate_predictor(
        model, frame, target="target", slices=slices, sensitive=["sex"], **FAST
    )


@pytest.fixture(scope="module")
def iris() -> tuple[Sklearn, pd.DataFrame]:
    frame = _with_groups(load_iris(as_frame=True).frame, seed=1)
    return _fit(frame, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))), frame


@pytest.fixture(scope="module")
def diabetes() -> tuple[Sklearn, pd.DataFrame]:
    frame = load_diabetes(as_frame=True).frame.rename(columns={"sex": "sex_score"})
    frame = _with_groups(frame, seed=2)
    return _fit(frame, LinearRegression()), frame


# --- metrics equal sklearn's ------------------------------------------------------------


def test_binary_metrics_equal_sklearn(
    cancer: tuple[Sklearn, pd.DataFrame], cancer_report: dict[str, Any]
) -> None:
    model, frame = cancer
    y, pred, p = frame["target"], model.predict(frame), model.predict_proba(frame)[:, 1]
    expected = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred),
        "recall": metrics.recall_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "roc_auc": metrics.roc_auc_score(y, p),
        "pr_auc": metrics.average_precision_score(y, p),
        "log_loss": metrics.log_loss(y, model.predict_proba(frame)),
        "brier": metrics.brier_score_loss(y, p),
    }
    assert cancer_report["task"] == "binary"
    assert cancer_report["positive_class"] == 1 and cancer_report["classes"] == [0, 1]
    assert cancer_report["rows"] == len(frame)
    assert cancer_report["metrics"] == pytest.approx(expected, abs=1e-12)


def test_multiclass_metrics_equal_sklearn(iris: tuple[Sklearn, pd.DataFrame]) -> None:
    model, frame = iris
    report = evaluate_predictor(model, frame, target="target", **FAST)
    y, pred, proba = frame["target"], model.predict(frame), model.predict_proba(frame)
    assert report["task"] == "multiclass" and report["positive_class"] is None
    assert report["metrics"] == pytest.approx(
        {
            "accuracy": metrics.accuracy_score(y, pred),
            "macro_f1": metrics.f1_score(y, pred, average="macro"),
            "weighted_f1": metrics.f1_score(y, pred, average="weighted"),
            "roc_auc": metrics.roc_auc_score(y, proba, multi_class="ovr"),
            "log_loss": metrics.log_loss(y, proba),
        },
        abs=1e-12,
    )
    assert report["curves"]["confusion"] == {
        "labels": [0, 1, 2],
        "matrix": metrics.confusion_matrix(y, pred).tolist(),
    }


def test_regression_metrics_equal_sklearn(diabetes: tuple[Sklearn, pd.DataFrame]) -> None:
    model, frame = diabetes
    report = evaluate_predictor(model, frame, target="target", sensitive=["sex"], **FAST)
    y, pred = frame["target"], model.predict(frame)
    assert report["task"] == "regression" and report["classes"] is None
    assert report["metrics"] == pytest.approx(
        {
            "rmse": metrics.root_mean_squared_error(y, pred),
            "mae": metrics.mean_absolute_error(y, pred),
            "r2": metrics.r2_score(y, pred),
            "mape": metrics.mean_absolute_percentage_error(y, pred),
        },
        abs=1e-9,
    )
    assert report["calibration"] is None
    assert sum(b["count"] for b in report["curves"]["residuals"]) == len(frame)
    groups = report["fairness"]["sex"]["groups"]
    means = {g: float(pred[frame["sex"] == g].mean()) for g in ("f", "m")}
    assert {g: groups[g]["mean_prediction"] for g in means} == pytest.approx(means)
    assert report["fairness"]["sex"]["mean_prediction_diff"] == pytest.approx(
        abs(means["f"] - means["m"])
    )
    assert report["robustness"]["flip_rate"] is None
    assert report["robustness"]["mean_abs_change"] > 0


def test_mape_is_none_when_a_true_value_is_zero() -> None:
    frame = pd.DataFrame({"y": [0.0, 1.5, 2.25, 3.0] * 10, "guess": [0.5, 1.0, 2.0, 3.5] * 10})
    report = evaluate_predictor(FromColumns("guess"), frame, target="y", **FAST)
    assert report["task"] == "regression"
    assert report["metrics"]["mape"] is None
    assert report["metrics"]["mae"] == pytest.approx((0.5 + 0.5 + 0.25 + 0.5) / 4)


# --- slices -------------------------------------------------------------------------------


def test_slice_metrics_equal_metrics_on_the_filtered_frame(
    cancer: tuple[Sklearn, pd.DataFrame], cancer_report: dict[str, Any]
) -> None:
    model, frame = cancer
    filters = {
        "segment=gold": frame["segment"] == "gold",
        "segment=bronze": frame["segment"] == "bronze",
        "segment == 'gold' and sex != 'm'": (frame["segment"] == "gold") & (frame["sex"] != "m"),
    }
    for name, rows in filters.items():
        alone = evaluate_predictor(model, frame[rows], target="target", **FAST)
        assert cancer_report["slices"][name] == {
            "rows": int(rows.sum()),
            "metrics": alone["metrics"],
        }


def test_numeric_column_slices_are_quartile_bins(cancer_report: dict[str, Any]) -> None:
    names = [n for n in cancer_report["slices"] if n.startswith("mean radius in ")]
    assert len(names) == 4
    assert names[0].endswith(")") and names[-1].endswith("]")
    assert sum(cancer_report["slices"][n]["rows"] for n in names) == cancer_report["rows"]


def test_single_class_slice_has_undefined_metrics_as_none(cancer_report: dict[str, Any]) -> None:
    only_positive = cancer_report["slices"]["target == 1"]["metrics"]
    assert only_positive["roc_auc"] is None and only_positive["pr_auc"] is not None
    assert only_positive["recall"] is not None


def test_multiclass_slice_with_one_class_keeps_the_defined_metrics(
    iris: tuple[Sklearn, pd.DataFrame],
) -> None:
    model, frame = iris
    report = evaluate_predictor(model, frame, target="target", slices=["target == 0"], **FAST)
    one_class = report["slices"]["target == 0"]["metrics"]
    assert one_class["roc_auc"] is None
    rows = frame["target"] == 0
    pred = model.predict(frame[rows])
    assert one_class["accuracy"] == metrics.accuracy_score(frame["target"][rows], pred)
    assert one_class["macro_f1"] == metrics.f1_score(frame["target"][rows], pred, average="macro")


def test_slices_min_and_max_ignore_undefined_values(cancer_report: dict[str, Any]) -> None:
    aucs = [s["metrics"]["roc_auc"] for s in cancer_report["slices"].values()]
    known = [a for a in aucs if a is not None]
    assert cancer_report["slices_min"]["roc_auc"] == min(known)
    assert cancer_report["slices_max"]["roc_auc"] == max(known)


def test_empty_slice_reports_zero_rows_and_no_metrics(
    cancer: tuple[Sklearn, pd.DataFrame],
) -> None:
    model, frame = cancer
    report = evaluate_predictor(
        model, frame, target="target", slices=["`mean radius` > 1e9"], **FAST
    )
    assert report["slices"]["`mean radius` > 1e9"] == {"rows": 0, "metrics": None}
    assert report["slices_min"]["accuracy"] is None


def test_missing_columns_and_target_values_are_invalid_input(
    cancer: tuple[Sklearn, pd.DataFrame],
) -> None:
    model, frame = cancer
    with pytest.raises(InvalidInput, match="'label'"):
        evaluate_predictor(model, frame, target="label", **FAST)
    with pytest.raises(InvalidInput, match="'region'"):
        evaluate_predictor(model, frame, target="target", sensitive=["region"], **FAST)
    with pytest.raises(InvalidFilter, match="unknown column 'region'"):
        evaluate_predictor(model, frame, target="target", slices=["region"], **FAST)
    holes = frame.assign(target=frame["target"].astype(float))
    holes.loc[holes.index[:3], "target"] = np.nan
    with pytest.raises(InvalidInput, match="target 'target' has 3 missing values"):
        evaluate_predictor(model, holes, target="target", **FAST)


# --- the slice parser ---------------------------------------------------------------------

OPS = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge}
OPS |= {"<": operator.lt, "<=": operator.le}
values = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-5, 5).map(float)
numbers = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False) | st.integers(-5, 5)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(1, 12))
    column = st.lists(values | st.just(math.nan), min_size=rows, max_size=rows)
    return pd.DataFrame({"a": draw(column), "b b": draw(column)})


atoms = st.tuples(st.sampled_from(["a", "`b b`"]), st.sampled_from(sorted(OPS)), numbers)


def _atom(frame: pd.DataFrame, column: str, op: str, number: float) -> np.ndarray:
    values = frame[column.strip("`")].to_numpy(dtype=float)
    return np.asarray(OPS[op](values, float(number)), dtype=bool)


@settings(max_examples=200)
@given(frames(), atoms)
def test_numeric_comparisons_match_numpy(frame: pd.DataFrame, atom: tuple[str, str, Any]) -> None:
    column, op, number = atom
    mask = slice_mask(frame, f"{column} {op} {number!r}")
    np.testing.assert_array_equal(mask, _atom(frame, column, op, number))


@settings(max_examples=150)
@given(
    frames(),
    st.lists(
        st.tuples(atoms, st.booleans(), st.sampled_from(["and", "or"])), min_size=1, max_size=5
    ),
)
def test_not_binds_tighter_than_and_which_binds_tighter_than_or(
    frame: pd.DataFrame, chain: list[tuple[tuple[str, str, Any], bool, str]]
) -> None:
    text, groups, current = [], [], np.ones(len(frame), dtype=bool)
    for i, ((column, op, number), negate, joiner) in enumerate(chain):
        text.append(f"{'NOT ' if negate else ''}{column}{op}{number!r}")
        atom = _atom(frame, column, op, number)
        current = current & (~atom if negate else atom)
        if i < len(chain) - 1:
            text.append(joiner)
            if joiner == "or":
                groups.append(current)
                current = np.ones(len(frame), dtype=bool)
    expected = np.logical_or.reduce([*groups, current])
    np.testing.assert_array_equal(slice_mask(frame, " ".join(text)), expected)


def test_parentheses_override_precedence() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
    assert slice_mask(frame, "x > 3 or x < 2 and y == 1").tolist() == [False, False, False, True]
    assert slice_mask(frame, "(x > 3 or x < 2) and y == 1").tolist() == [False, False, False, True]
    assert slice_mask(frame, "(x > 3 or x < 2) and y == 0").tolist() == [True, False, False, False]
    assert slice_mask(frame, "not (x >= 2 and y == 0)").tolist() == [True, True, False, True]
    assert slice_mask(frame, "not not x == 1").tolist() == [True, False, False, False]


def test_strings_quoted_columns_and_missing_values() -> None:
    frame = pd.DataFrame(
        {"my col": ["O'Brien", 'say "hi"', None, "gold"], "tier": ["b", "a", "c", None]}
    )
    assert slice_mask(frame, "`my col` == 'O''Brien'").tolist() == [True, False, False, False]
    with pytest.deprecated_call(match="write 'say \"hi\"'; strings are in single quotes"):
        assert slice_mask(frame, "`my col` == \"say \"\"hi\"\"\"").tolist() == [
            False, True, False, False,
        ]  # fmt: skip
    assert slice_mask(frame, "tier != 'a'").tolist() == [True, False, True, True]
    assert slice_mask(frame, "tier >= 'b' OR `my col` == 'gold'").tolist() == [
        True, False, True, True,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "position", "detail"),
    [
        ("age >", 5, "expected a column, number or string, got the end"),
        # one tokenizer for every dialect reads '>>' as one (bad) operator, as filters did
        ("age >> 3", 4, "expected a comparison operator, got '>>'"),
        ("(age > 3", 8, "expected 'and', 'or' or ')'"),
        ("age > 3)", 7, "expected 'and', 'or' or the end"),
        ("age > 'x", 6, "unterminated string"),
        ("age $ 3", 4, "unexpected character '$'"),
        ("agee > 3", 0, "unknown column 'agee'"),
        ("age > 3 and", 11, "got the end"),
        ("age 3", 4, "expected a comparison operator"),
        ("age == 'old'", 4, "cannot compare numeric column 'age' with the string 'old'"),
        ("`age", 0, "unterminated column name"),
        ("", 0, "empty"),
        ("age > 3 and or age < 2", 12, "got 'or'"),
    ],
)
def test_malformed_conditions_name_the_problem_and_position(
    condition: str, position: int, detail: str
) -> None:
    frame = pd.DataFrame({"age": [20, 70]})
    with pytest.raises(InvalidFilter) as raised:
        slice_mask(frame, condition)
    assert raised.value.position == position
    assert f"at position {position}" in str(raised.value)
    assert detail in str(raised.value)
    assert isinstance(raised.value, InvalidInput)


def test_date_time_columns_compare_with_quoted_dates() -> None:
    frame = pd.DataFrame({"day": pd.to_datetime(["2024-01-01", "2024-06-01", None])})
    assert slice_mask(frame, "day >= '2024-05-01'").tolist() == [False, True, False]
    with pytest.raises(InvalidFilter, match="position 6: the string 'soon' is not a date"):
        slice_mask(frame, "day > 'soon'")


def test_a_boolean_column_is_a_condition_on_its_own() -> None:
    frame = pd.DataFrame({"member": [True, False, True], "age": [10, 20, 30]})
    assert slice_mask(frame, "member and age > 15").tolist() == [False, False, True]


def test_the_shared_language_spellings_work_in_slices() -> None:
    frame = pd.DataFrame({"age": [20, 70, None], "tier": ["a", "b", None]})
    assert slice_mask(frame, "age = 20").tolist() == [True, False, False]
    assert slice_mask(frame, "age <> 20").tolist() == [False, True, True]
    assert slice_mask(frame, "tier in ('a', 'c')").tolist() == [True, False, False]
    assert slice_mask(frame, "tier not in ('a',)").tolist() == [False, True, True]
    assert slice_mask(frame, "age is null or tier IS NOT NULL").tolist() == [True, True, True]
    assert slice_mask(frame, "age is not null and not tier = 'a'").tolist() == [
        False, True, False,
    ]  # fmt: skip
    assert slice_mask(frame, "age > 30  # the old ones").tolist() == [False, True, False]
    with pytest.raises(InvalidFilter, match="position 5: operator 'like' cannot be used"):
        slice_mask(frame, "tier like 'a%'")
    with pytest.raises(InvalidFilter, match="position 3: expected a comparison operator after"):
        slice_mask(frame, "age")


# --- fairness, calibration, robustness ------------------------------------------------------


def test_fairness_by_hand_on_a_tiny_frame() -> None:
    frame = pd.DataFrame(
        {
            "group": ["a"] * 4 + ["b"] * 4,
            "y": [1, 1, 0, 0, 1, 0, 0, 0],
            "pred": [1, 0, 1, 0, 1, 1, 1, 0],
        }
    )
    report = evaluate_predictor(
        FromColumns("pred", classes=[0, 1]), frame, target="y", sensitive=["group"], **FAST
    )
    fair = report["fairness"]["group"]
    # a: positive rate 2/4, TPR 1/2, FPR 1/2; b: positive rate 3/4, TPR 1/1, FPR 2/3
    assert fair["groups"] == {
        "a": {"rows": 4, "positive_rate": 0.5, "tpr": 0.5, "fpr": 0.5},
        "b": {"rows": 4, "positive_rate": 0.75, "tpr": 1.0, "fpr": pytest.approx(2 / 3)},
    }
    assert fair["demographic_parity_diff"] == pytest.approx(0.25)
    assert fair["equalized_odds_diff"] == pytest.approx(0.5)  # max(|0.5 - 1|, |0.5 - 2/3|)


def test_expected_calibration_error_by_hand() -> None:
    frame = pd.DataFrame({"y": [0, 1, 1, 1, 1], "p": [0.1, 0.1, 0.8, 0.8, 0.95]})
    frame["pred"] = (frame["p"] > 0.5).astype(int)
    report = evaluate_predictor(FromColumns("pred", "p", [0, 1]), frame, target="y", **FAST)
    calibration = report["calibration"]
    # bin [0.1, 0.2): gap |0.1 - 0.5| x 2 rows; [0.8, 0.9): |0.8 - 1| x 2; [0.9, 1]: 0.05 x 1
    assert calibration["ece"] == pytest.approx((0.8 + 0.4 + 0.05) / 5)
    assert [b["count"] for b in calibration["bins"]] == [0, 2, 0, 0, 0, 0, 0, 0, 2, 1]
    assert calibration["bins"][1] == {
        "lower": 0.1, "upper": 0.2, "count": 2, "mean_predicted": 0.1, "fraction_positive": 0.5,
    }  # fmt: skip
    assert calibration["bins"][0]["mean_predicted"] is None


def test_flip_rate_is_zero_for_a_constant_model_and_positive_near_a_threshold() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": rng.normal(size=2000), "z": rng.normal(size=2000)})
    frame["y"] = (frame["x"] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    constant = evaluate_predictor(Threshold(math.inf), frame, target="y", seed=3, **FAST)
    threshold = evaluate_predictor(Threshold(0.0), frame, target="y", seed=3, **FAST)
    assert constant["robustness"] == {
        "flip_rate": 0.0, "mean_abs_change": None, "noise": 0.01, "features": ["x", "z"],
    }  # fmt: skip
    assert 0 < threshold["robustness"]["flip_rate"] < 0.05
    again = evaluate_predictor(Threshold(0.0), frame, target="y", seed=3, **FAST)
    assert again["robustness"] == threshold["robustness"]  # seeded


# --- task, latency, the report as data ------------------------------------------------------


def test_task_is_inferred_from_the_target_and_the_model() -> None:
    frame = pd.DataFrame(
        {"label": ["no", "yes", "no", "yes"], "guess": ["no", "yes", "yes", "yes"]}
    )
    report = evaluate_predictor(FromColumns("guess"), frame, target="label", **FAST)
    assert report["task"] == "binary" and report["positive_class"] == "yes"
    assert report["metrics"]["precision"] == pytest.approx(2 / 3)
    ints = pd.DataFrame({"y": [0, 1, 2, 1], "guess": [0, 1, 2, 2]})
    assert evaluate_predictor(FromColumns("guess"), ints, target="y", **FAST)["task"] == (
        "regression"
    )
    labelled = FromColumns("guess", classes=[0, 1, 2])
    assert evaluate_predictor(labelled, ints, target="y", **FAST)["task"] == "multiclass"
    with pytest.raises(InvalidInput, match="unknown task"):
        evaluate_predictor(labelled, ints, target="y", task="ranking", **FAST)


def test_latency_and_size_are_measured(cancer: tuple[Sklearn, pd.DataFrame]) -> None:
    model, frame = cancer
    report = evaluate_predictor(
        model, frame, target="target", model_size_bytes=1234, latency_repeats=20
    )
    latency = report["latency"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert latency["batch_rows"] == len(frame) and latency["rows_per_second"] > 0
    assert 0 < latency["batch_p50_ms"] <= latency["batch_p99_ms"]
    assert report["size"] == {"bytes": 1234}


def test_report_is_strict_json_with_short_curves(
    cancer_report: dict[str, Any],
    iris: tuple[Sklearn, pd.DataFrame],
    diabetes: tuple[Sklearn, pd.DataFrame],
) -> None:
    reports = [cancer_report]
    for model, frame in (iris, diabetes):
        reports.append(
            evaluate_predictor(
                model, frame, target="target", slices=["segment"], sensitive=["sex"], **FAST
            )
        )
    for report in reports:
        assert json.loads(json.dumps(report, allow_nan=False)) == report
    curves = cancer_report["curves"]
    assert 2 <= len(curves["roc"]["fpr"]) == len(curves["roc"]["tpr"]) <= 200
    assert curves["roc"]["fpr"][0] == 0 and curves["roc"]["tpr"][-1] == 1
    assert len(curves["pr"]["precision"]) <= 200
    assert set(cancer_report) == {
        "task", "target", "rows", "positive_class", "classes", "metrics", "slices",
        "slices_min", "slices_max", "fairness", "calibration", "robustness", "latency",
        "size", "curves",
    }  # fmt: skip
