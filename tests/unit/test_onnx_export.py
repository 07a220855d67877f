"""ONNX export: real models converted, run by onnxruntime, and compared with the original."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxmltools")

import onnx
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopline.errors import InvalidInput, MissingExtra, SignatureMismatch
from loopline.packaging import export
from loopline.packaging.export import (
    OnnxColumn,
    ParityReport,
    check_parity,
    convert_to_onnx,
    onnx_predict,
    onnx_session,
    quantize_dynamic,
)

IRIS_NAMES = {0: "setosa", 1: "versicolor", 2: "virginica"}


@pytest.fixture(autouse=True)
def quick_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each latency measurement stops after 0.2 s instead of 1 s: these tests check that
    latencies are reported, not how precise they are, and must stay fast on a busy CI."""
    monkeypatch.setattr(export, "LATENCY_BUDGET_S", 0.2)


def numeric_columns(frame: pd.DataFrame) -> list[OnnxColumn]:
    return [OnnxColumn(str(name), "double") for name in frame.columns]


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y.map(IRIS_NAMES)


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="module")
def logistic(cancer: tuple[pd.DataFrame, pd.Series]) -> Pipeline:
    x, y = cancer
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


def round_trip(
    model: Any,
    flavor: str,
    data: pd.DataFrame,
    columns: list[OnnxColumn] | None = None,
    *,
    tolerance: float = 1e-4,
    predict: Callable[[pd.DataFrame], Any] | None = None,
    classes: list[Any] | None = None,
) -> tuple[bytes, ParityReport]:
    columns = columns if columns is not None else numeric_columns(data)
    onnx_bytes = convert_to_onnx(model, flavor, columns, classes=classes)
    report = check_parity(
        predict or model.predict,
        getattr(model, "predict_proba", None),
        onnx_bytes,
        data,
        columns,
        tolerance=tolerance,
        original_size=12345,
    )
    return onnx_bytes, report


def assert_latencies_positive(report: ParityReport) -> None:
    assert report.original_p50_ms_one_row > 0
    assert report.onnx_p50_ms_one_row > 0
    assert report.original_p50_ms_batch > 0
    assert report.onnx_p50_ms_batch > 0
    assert report.batch_rows == min(report.rows, 1000)


def test_logistic_pipeline_round_trips_with_one_float_input_and_classes_metadata(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = cancer
    onnx_bytes, report = round_trip(logistic, "sklearn", x)

    assert report.passed, report
    assert report.label_agreement == 1.0
    assert report.max_abs_diff_prediction == 0.0
    assert report.max_abs_diff_proba is not None and report.max_abs_diff_proba < 1e-5
    assert (report.rows, report.original_bytes, report.onnx_bytes) == (
        len(x),
        12345,
        len(onnx_bytes),
    )
    assert_latencies_positive(report)
    assert report.to_dict()["passed"] is True
    model = onnx.load_from_string(onnx_bytes)
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [0, x.shape[1]]
    assert {p.key: p.value for p in model.metadata_props}["loopline.classes"] == "[0, 1]"


def test_onnx_predict_returns_labels_and_probability_matrix(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = cancer
    columns = numeric_columns(x)
    session = onnx_session(convert_to_onnx(logistic, "sklearn", columns))

    labels, proba = onnx_predict(session, x.iloc[:7], columns)

    assert list(labels) == list(logistic.predict(x.iloc[:7]))
    assert proba is not None and proba.shape == (7, 2)
    np.testing.assert_allclose(proba, logistic.predict_proba(x.iloc[:7]), atol=1e-5)


def test_random_forest_classifier_round_trips(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    x, y = cancer
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)

    _, report = round_trip(model, "sklearn", x)

    assert report.passed, report
    assert report.label_agreement == 1.0
    assert_latencies_positive(report)


def test_random_forest_regressor_round_trips(diabetes: tuple[pd.DataFrame, pd.Series]) -> None:
    x, y = diabetes
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(x, y)

    _, report = round_trip(model, "sklearn", x)

    assert report.passed, report
    assert report.label_agreement is None and report.max_abs_diff_proba is None
    assert_latencies_positive(report)


def test_column_transformer_with_a_string_column_gets_one_input_per_column(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = iris
    frame = x.assign(size=np.where(x["petal length (cm)"] > 4.0, "large", "small"))
    numeric = list(x.columns)
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["size"]),
                        ("scale", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    ).fit(frame, y)
    columns = [*numeric_columns(x), OnnxColumn("size", "string")]

    onnx_bytes, report = round_trip(model, "sklearn", frame, columns)

    assert report.passed, report
    inputs = onnx.load_from_string(onnx_bytes).graph.input
    assert [i.name for i in inputs] == [c.name for c in columns]  # spaces and all
    types = {i.name: i.type.tensor_type.elem_type for i in inputs}
    assert types["size"] == onnx.TensorProto.STRING
    assert types["sepal length (cm)"] == onnx.TensorProto.FLOAT


def test_column_transformer_selecting_numeric_columns_by_name_uses_the_single_input(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = iris
    model = Pipeline(
        [
            ("prepare", ColumnTransformer([("scale", StandardScaler(), list(x.columns[:2]))])),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    ).fit(x, y)

    onnx_bytes, report = round_trip(model, "sklearn", x)

    assert report.passed, report
    assert [i.name for i in onnx.load_from_string(onnx_bytes).graph.input] == ["input"]


def test_xgboost_classifier_fitted_on_a_dataframe_round_trips(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = cancer
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x, y)

    _, report = round_trip(model, "xgboost", x)

    assert report.passed, report
    assert_latencies_positive(report)


def test_xgboost_labels_map_back_from_indices_to_the_given_classes(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = iris
    names = sorted(IRIS_NAMES.values())
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=2, n_jobs=1).fit(x, y.map(names.index))

    def predict_names(frame: pd.DataFrame) -> Any:
        return np.asarray(names)[model.predict(frame)]

    onnx_bytes, report = round_trip(model, "xgboost", x, predict=predict_names, classes=names)

    assert report.passed, report
    labels, _ = onnx_predict(onnx_session(onnx_bytes), x.iloc[[0, 149]], numeric_columns(x))
    assert list(labels) == ["setosa", "virginica"]


def test_xgboost_regressor_round_trips(diabetes: tuple[pd.DataFrame, pd.Series]) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = diabetes
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(x, y)

    # Targets reach 346, where one float32 step is 3e-5; summing 20 trees in another
    # order than xgboost does can cost a few of those, so allow 1e-3 here.
    _, report = round_trip(model, "xgboost", x, tolerance=1e-3)

    assert report.passed, report
    assert report.max_abs_diff_prediction < 1e-3


def test_lightgbm_classifier_with_string_labels_round_trips(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    x, y = iris
    model = lightgbm.LGBMClassifier(n_estimators=20, n_jobs=1, verbose=-1).fit(x, y)

    onnx_bytes, report = round_trip(model, "lightgbm", x)

    assert report.passed, report
    assert report.label_agreement == 1.0
    labels, proba = onnx_predict(onnx_session(onnx_bytes), x.iloc[:3], numeric_columns(x))
    assert list(labels) == list(model.predict(x.iloc[:3]))
    assert proba is not None and proba.shape == (3, 3)


def test_lightgbm_regressor_round_trips(diabetes: tuple[pd.DataFrame, pd.Series]) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    x, y = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=20, n_jobs=1, verbose=-1).fit(x, y)

    _, report = round_trip(model, "lightgbm", x)

    assert report.passed, report
    assert_latencies_positive(report)


def test_quantized_logistic_model_still_loads_and_reports_parity(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = cancer
    columns = numeric_columns(x)
    onnx_bytes = convert_to_onnx(logistic, "sklearn", columns)

    quantized = quantize_dynamic(onnx_bytes)
    report = check_parity(
        logistic.predict,
        logistic.predict_proba,
        quantized,
        x,
        columns,
        tolerance=0.05,
        original_size=len(onnx_bytes),
    )

    assert report.passed, report
    assert report.onnx_bytes == len(quantized)
    props = {p.key: p.value for p in onnx.load_from_string(quantized).metadata_props}
    assert props["loopline.classes"] == "[0, 1]"


def test_quantizing_a_tree_ensemble_does_not_crash(
    diabetes: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = diabetes
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
    columns = numeric_columns(x)

    quantized = quantize_dynamic(convert_to_onnx(model, "sklearn", columns))

    predictions, _ = onnx_predict(onnx_session(quantized), x.iloc[:5], columns)
    np.testing.assert_allclose(predictions, model.predict(x.iloc[:5]), atol=1e-3)


def test_pyfunc_flavor_is_refused(logistic: Pipeline) -> None:
    with pytest.raises(InvalidInput, match="cannot export flavor 'pyfunc' to ONNX"):
        convert_to_onnx(logistic, "pyfunc", [OnnxColumn("a", "double")])


class MajorityVote(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has never heard of."""

    def fit(self, x: pd.DataFrame, y: pd.Series) -> MajorityVote:
        self.classes_ = np.unique(y)
        self.majority_ = y.mode().iloc[0]
        return self

    def predict(self, x: pd.DataFrame) -> Any:
        return np.full(len(x), self.majority_)


def test_unsupported_sklearn_estimator_is_one_line_invalid_input(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = cancer
    model = MajorityVote().fit(x, y)

    with pytest.raises(InvalidInput) as caught:
        convert_to_onnx(model, "sklearn", numeric_columns(x))

    message = str(caught.value)
    assert message.startswith("cannot export sklearn model MajorityVote to ONNX: ")
    assert "\n" not in message
    assert caught.value.__cause__ is not None


def test_parity_fails_against_a_different_models_onnx(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, y = cancer
    stump = RandomForestClassifier(n_estimators=3, max_depth=1, random_state=0).fit(x, y)
    columns = numeric_columns(x)

    report = check_parity(
        logistic.predict,
        logistic.predict_proba,
        convert_to_onnx(stump, "sklearn", columns),
        x,
        columns,
        original_size=1,
    )

    assert not report.passed
    assert report.max_abs_diff_proba is not None and report.max_abs_diff_proba > 0.3
    assert report.label_agreement is not None and report.label_agreement < 1.0
    assert report.max_abs_diff_prediction == 1.0


def test_label_disagreement_is_forgiven_only_on_a_near_tie(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = cancer
    columns = numeric_columns(x)
    onnx_bytes = convert_to_onnx(logistic, "sklearn", columns)
    proba = logistic.predict_proba(x)
    closest = int(np.argmin(np.abs(proba[:, 1] - proba[:, 0])))
    gap = float(abs(proba[closest, 1] - proba[closest, 0]))

    def predict_flipping_the_closest_row(frame: pd.DataFrame) -> Any:
        labels = logistic.predict(frame)
        hit = frame.index == x.index[closest]
        labels[hit] = 1 - labels[hit]
        return labels

    def parity(tolerance: float) -> ParityReport:
        return check_parity(
            predict_flipping_the_closest_row,
            logistic.predict_proba,
            onnx_bytes,
            x,
            columns,
            tolerance=tolerance,
            original_size=1,
        )

    forgiven, strict = parity(gap * 1.01 + 1e-6), parity(gap * 0.99)

    assert forgiven.passed and forgiven.max_abs_diff_prediction == 1.0
    assert forgiven.label_agreement == pytest.approx(1 - 1 / len(x))
    assert not strict.passed


def test_regression_parity_fails_against_a_different_models_onnx(
    diabetes: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = diabetes
    columns = numeric_columns(x)
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
    other = RandomForestRegressor(n_estimators=5, max_depth=2, random_state=1).fit(x, y)

    report = check_parity(
        forest.predict,
        None,
        convert_to_onnx(other, "sklearn", columns),
        x,
        columns,
        original_size=1,
    )

    assert not report.passed
    assert report.max_abs_diff_prediction > 10


def test_parity_samples_at_most_ten_thousand_rows(diabetes: tuple[pd.DataFrame, pd.Series]) -> None:
    x, y = diabetes
    model = RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0).fit(x, y)
    columns = numeric_columns(x)
    big = pd.concat([x] * 25, ignore_index=True)  # 11,050 rows

    report = check_parity(
        model.predict,
        None,
        convert_to_onnx(model, "sklearn", columns),
        big,
        columns,
        original_size=1,
        seed=3,
    )

    assert report.rows == 10_000 and report.batch_rows == 1000
    assert report.passed


def test_missing_column_is_a_signature_mismatch(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    x, _ = cancer
    columns = numeric_columns(x)
    session = onnx_session(convert_to_onnx(logistic, "sklearn", columns))

    with pytest.raises(SignatureMismatch, match="mean radius"):
        onnx_predict(session, x.drop(columns=["mean radius"]), columns)


def test_unknown_column_type_is_invalid_input(logistic: Pipeline) -> None:
    with pytest.raises(InvalidInput, match="has type 'date'"):
        convert_to_onnx(logistic, "sklearn", [OnnxColumn("when", "date")])


def test_garbage_bytes_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="onnxruntime cannot load"):
        onnx_session(b"not an onnx model")


def test_missing_onnx_extra_names_the_extra(
    logistic: Pipeline, cancer: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = cancer
    monkeypatch.setitem(sys.modules, "onnxmltools", None)  # as if not installed

    with pytest.raises(MissingExtra) as caught:
        convert_to_onnx(logistic, "sklearn", numeric_columns(x))

    assert caught.value.extra == "onnx"
    assert "exporting to ONNX" in str(caught.value)
