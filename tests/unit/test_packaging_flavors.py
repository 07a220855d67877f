"""Model packages round-trip every flavor: the loaded model predicts what the original did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline
from loopline.errors import InvalidInput
from loopline.packaging import (
    MANIFEST_NAME,
    ColumnSpec,
    detect_flavor,
    load_model,
    read_manifest,
    save_model,
)

TREE = ["sklearn.tree._tree.Tree"]  # skops 0.16 no longer trusts tree nodes by default


class MeanAbove:
    """A pyfunc model: only `predict`, defined here so that it pickles by reference."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return (frame.mean(axis=1) > self.threshold).to_numpy().astype(np.int64)


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series[Any]]:
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    return features, target


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    data = load_iris(as_frame=True)
    # lightgbm warns about spaces in feature names; plain names keep every library quiet
    features = data.data.set_axis(["sepal_l", "sepal_w", "petal_l", "petal_w"], axis=1)
    return features, np.asarray(data.target_names)[data.target]


def test_sklearn_pipeline_round_trips_with_equal_predictions(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    loaded = load_model(tmp_path / "pkg")
    assert loaded.flavor == "sklearn"
    assert np.array_equal(loaded.predict(features), model.predict(features))
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features))
    assert loaded.has_proba
    assert loaded.classes == [0, 1]
    assert type(loaded.raw).__name__ == "Pipeline"


def test_manifest_records_what_the_package_holds(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    returned = save_model(model, tmp_path / "pkg", input_example=features, metadata={"team": "x"})
    manifest = read_manifest(tmp_path / "pkg")
    assert manifest == returned
    assert manifest.format_version == 1
    assert manifest.flavor == "sklearn"
    assert manifest.model_class == "sklearn.pipeline.Pipeline"
    assert manifest.framework == {"name": "scikit-learn", "version": sklearn.__version__}
    assert manifest.loopline_version == loopline.__version__
    assert manifest.python_version == ".".join(map(str, sys.version_info[:3]))
    assert manifest.created_at.utcoffset() is not None
    assert manifest.task_hint == "classification"
    assert manifest.classes == [0, 1]
    assert f"scikit-learn=={sklearn.__version__}" in manifest.requirements
    assert any(line.startswith("skops==") for line in manifest.requirements)
    assert manifest.pickle is False
    assert manifest.metadata == {"team": "x"}
    assert manifest.signature.input_names == list(features.columns)
    assert manifest.signature.inputs[0] == ColumnSpec("mean radius", "double", nullable=False)
    assert manifest.signature.outputs == (
        ColumnSpec("prediction", "long"),
        ColumnSpec("probabilities", "double", shape=(-1, 2)),
    )
    assert set(manifest.files) == {"model.skops"}
    assert manifest.files["model.skops"].size == (tmp_path / "pkg" / "model.skops").stat().st_size
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == [MANIFEST_NAME, "model.skops"]


def test_manifest_is_readable_yaml_with_the_documented_keys(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    import yaml

    features, target = cancer
    model = LogisticRegression(max_iter=5000).fit(features, target)
    save_model(model, tmp_path / "pkg", requirements=["scikit-learn>=1.4"])
    body = yaml.safe_load((tmp_path / "pkg" / MANIFEST_NAME).read_text())
    for key in ("format_version", "flavor", "model_class", "framework", "python_version"):
        assert key in body
    for key in ("loopline_version", "created_at", "signature", "classes", "task_hint", "files"):
        assert key in body
    assert body["requirements"] == ["scikit-learn>=1.4"]
    assert body["signature"]["outputs"][1] == {
        "name": "probabilities",
        "type": "double",
        "shape": [-1, 2],
    }
    assert len(body["files"]["model.skops"]["blake3"]) == 64


def test_random_forest_round_trips_once_its_tree_type_is_trusted(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, target = cancer
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(features, target)
    save_model(model, tmp_path / "pkg")
    loaded = load_model(tmp_path / "pkg", trusted=TREE)
    assert np.array_equal(loaded.predict(features), model.predict(features))
    assert np.array_equal(loaded.predict_proba(features), model.predict_proba(features))


def test_sklearn_regressor_without_example_takes_feature_names_as_doubles(tmp_path: Path) -> None:
    features, target = load_diabetes(as_frame=True, return_X_y=True)
    model = LinearRegression().fit(features, target)
    manifest = save_model(model, tmp_path / "pkg")
    assert manifest.task_hint == "regression"
    assert manifest.classes is None
    assert manifest.signature.input_names == list(features.columns)
    assert {spec.type for spec in manifest.signature.inputs} == {"double"}
    assert manifest.signature.outputs == (ColumnSpec("prediction", "double"),)
    loaded = load_model(tmp_path / "pkg")
    assert not loaded.has_proba
    assert np.array_equal(loaded.predict(features), model.predict(features))
    with pytest.raises(InvalidInput, match="no predict_proba"):
        loaded.predict_proba(features)


def test_model_fitted_on_numpy_gets_numpy_and_an_empty_signature(tmp_path: Path) -> None:
    features, target = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(features, target)
    manifest = save_model(model, tmp_path / "pkg")
    assert manifest.signature.inputs == ()
    loaded = load_model(tmp_path / "pkg")
    assert np.array_equal(loaded.predict(features), model.predict(features))


def test_xgboost_classifier_round_trips_with_its_labels(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    xgboost = pytest.importorskip("xgboost")
    features, target = cancer
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(features, target)
    manifest = save_model(model, tmp_path / "pkg", input_example=features.head())
    assert manifest.flavor == "xgboost"
    assert set(manifest.files) == {"model.ubj"}
    assert manifest.flavor_options == {"wrapper": "XGBClassifier"}
    assert manifest.classes == [0, 1]
    assert manifest.requirements == [f"xgboost=={xgboost.__version__}"]
    loaded = load_model(tmp_path / "pkg")
    assert type(loaded.raw).__name__ == "XGBClassifier"
    assert np.array_equal(loaded.predict(features), model.predict(features))
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_xgboost_booster_round_trips(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    features, target = load_diabetes(as_frame=True, return_X_y=True)
    booster = xgboost.train(
        {"max_depth": 3}, xgboost.DMatrix(features, label=target), num_boost_round=10
    )
    assert detect_flavor(booster) == "xgboost"
    save_model(booster, tmp_path / "pkg", input_example=features.head())
    loaded = load_model(tmp_path / "pkg")
    expected = booster.predict(xgboost.DMatrix(features))
    assert np.array_equal(loaded.predict(features), expected)
    assert not loaded.has_proba


def test_lightgbm_classifier_returns_the_original_string_labels(
    tmp_path: Path, iris: tuple[pd.DataFrame, Any]
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, labels = iris
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(features, labels)
    manifest = save_model(model, tmp_path / "pkg", input_example=features.head())
    assert manifest.flavor == "lightgbm"
    assert manifest.classes == ["setosa", "versicolor", "virginica"]
    assert manifest.signature.outputs[0] == ColumnSpec("prediction", "string")
    loaded = load_model(tmp_path / "pkg")
    assert list(loaded.predict(features)) == list(model.predict(features))
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_lightgbm_binary_classifier_maps_probabilities_to_labels(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, target = cancer
    features = features.set_axis([f"x{i}" for i in range(features.shape[1])], axis=1)
    labels = np.where(target == 1, "benign", "malignant")
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(features, labels)
    save_model(model, tmp_path / "pkg")
    loaded = load_model(tmp_path / "pkg")
    assert list(loaded.predict(features)) == list(model.predict(features))
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_lightgbm_regressor_round_trips(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    features, target = load_diabetes(as_frame=True, return_X_y=True)
    model = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(features, target)
    manifest = save_model(model, tmp_path / "pkg", input_example=features)
    assert manifest.task_hint == "regression"
    loaded = load_model(tmp_path / "pkg")
    assert np.allclose(loaded.predict(features), model.predict(features))


def test_onnx_model_round_trips_and_decodes_zipmap_probabilities(
    tmp_path: Path, iris: tuple[pd.DataFrame, Any]
) -> None:
    pytest.importorskip("skl2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    features, labels = iris
    target = pd.Series(labels).map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features.to_numpy(), target)
    proto = to_onnx(model, features.to_numpy()[:1].astype(np.float32))
    manifest = save_model(proto.SerializeToString(), tmp_path / "pkg", input_example=features)
    assert manifest.flavor == "onnx"
    assert manifest.classes == [0, 1, 2]  # read from the graph's ZipMap
    assert manifest.signature.outputs[0] == ColumnSpec("prediction", "long")
    loaded = load_model(tmp_path / "pkg")
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    direct = session.run(None, {"X": features.to_numpy().astype(np.float32)})[0]
    assert np.array_equal(loaded.predict(features), direct)
    assert np.mean(loaded.predict(features) == model.predict(features.to_numpy())) > 0.99
    proba = loaded.predict_proba(features)
    assert proba.shape == (150, 3)
    assert np.allclose(proba, model.predict_proba(features.to_numpy()), atol=1e-4)


def test_onnx_labels_map_through_exported_metadata(
    tmp_path: Path, iris: tuple[pd.DataFrame, Any]
) -> None:
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    features, labels = iris
    target = pd.Series(labels).map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    model = LogisticRegression(max_iter=1000).fit(features.to_numpy(), target)
    proto = to_onnx(model, features.to_numpy()[:1].astype(np.float32))
    for key, value in [
        ("loopline.classes", '["setosa", "versicolor", "virginica"]'),
        ("loopline.graph_labels", "[0, 1, 2]"),
    ]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    manifest = save_model(
        proto, tmp_path / "pkg", input_example=features, metadata={"classes": None}
    )
    assert manifest.classes == ["setosa", "versicolor", "virginica"]
    assert manifest.signature.outputs[0] == ColumnSpec("prediction", "string")
    loaded = load_model(tmp_path / "pkg")
    expected = np.asarray(["setosa", "versicolor", "virginica"])[model.predict(features.to_numpy())]
    assert np.mean(loaded.predict(features) == expected) > 0.99


def test_onnx_graph_with_one_input_per_column_is_fed_by_name(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"])],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    manifest = save_model(proto, tmp_path / "pkg")
    assert manifest.signature.input_names == ["a", "b"]
    loaded = load_model(tmp_path / "pkg")
    result = loaded.predict(pd.DataFrame({"b": [2.0, 5.0], "a": [1, 1]}))
    assert result.tolist() == [3.0, 6.0]


def test_pyfunc_round_trips_with_allow_pickle(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, _ = cancer
    model = MeanAbove(60.0)
    manifest = save_model(model, tmp_path / "pkg", input_example=features.head())
    assert manifest.flavor == "pyfunc"
    assert manifest.pickle is True
    assert set(manifest.files) == {"model.pkl"}
    assert manifest.signature.outputs == (ColumnSpec("prediction", "long"),)
    loaded = load_model(tmp_path / "pkg", allow_pickle=True)
    assert np.array_equal(loaded.predict(features), model.predict(features))
    assert not loaded.has_proba


def test_detect_flavor_names_each_library() -> None:
    assert detect_flavor(LogisticRegression()) == "sklearn"
    assert detect_flavor(make_pipeline(StandardScaler(), LogisticRegression())) == "sklearn"
    assert detect_flavor(MeanAbove(1.0)) == "pyfunc"
    xgboost = pytest.importorskip("xgboost")
    assert detect_flavor(xgboost.XGBRegressor()) == "xgboost"
    lightgbm = pytest.importorskip("lightgbm")
    assert detect_flavor(lightgbm.LGBMClassifier()) == "lightgbm"


def test_detect_flavor_refuses_an_object_without_predict() -> None:
    with pytest.raises(InvalidInput, match="cannot package dict: it has no predict method"):
        detect_flavor({"weights": [1, 2]})
    with pytest.raises(InvalidInput, match="no predict method"):
        save_model(object(), "unused")


def test_detecting_a_sklearn_model_imports_neither_xgboost_nor_lightgbm() -> None:
    code = (
        "import sys\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from loopline.packaging import detect_flavor\n"
        "assert detect_flavor(LogisticRegression()) == 'sklearn'\n"
        "print(sorted(m for m in ('xgboost', 'lightgbm', 'onnxruntime') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
