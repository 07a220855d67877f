"""Packages are verified before loading, and loading is safe unless the caller opts in."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from loopline.errors import CorruptedData, InvalidInput, NotFound, UnsafeModel
from loopline.packaging import MANIFEST_NAME, load_model, read_manifest, save_model, verify_package


def clip_outliers(values: Any) -> Any:
    """A custom step: skops cannot know whether this function is safe to call."""
    return np.clip(values, -5, 5)


class Constant:
    """A pyfunc model that always predicts 1."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.ones(len(frame), dtype=np.int64)


class Tripwire:
    """Unpickling this records that an unlisted file was loaded."""

    loaded = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_trip, ())


def _trip() -> None:
    Tripwire.loaded = True


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series[Any]]:
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    return features, target


@pytest.fixture
def package(tmp_path: Path, cancer: tuple[pd.DataFrame, Any]) -> Path:
    features, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    return tmp_path / "pkg"


def _edit_manifest(package: Path, **changes: Any) -> None:
    file = package / MANIFEST_NAME
    body = yaml.safe_load(file.read_text())
    body.update(changes)
    file.write_text(yaml.safe_dump(body))


def test_verify_package_accepts_an_untouched_package(package: Path) -> None:
    assert verify_package(package).flavor == "sklearn"


def test_flipped_byte_is_reported_as_corrupted_naming_the_file(package: Path) -> None:
    model_file = package / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(CorruptedData, match=r"model file 'model.skops' does not match its"):
        load_model(package)
    with pytest.raises(CorruptedData, match=r"'model.skops'"):
        verify_package(package)


def test_deleted_model_file_is_reported_as_corrupted(package: Path) -> None:
    (package / "model.skops").unlink()
    with pytest.raises(CorruptedData, match=r"'model.skops' is listed in the manifest .* missing"):
        load_model(package)


def test_extra_files_in_the_folder_are_ignored(package: Path) -> None:
    (package / "README.md").write_text("notes")
    (package / "model.pkl").write_bytes(pickle.dumps(Tripwire()))
    loaded = load_model(package, allow_pickle=True)
    assert loaded.flavor == "sklearn"
    assert Tripwire.loaded is False


def test_model_file_the_manifest_does_not_list_is_never_loaded(package: Path) -> None:
    (package / "model.pkl").write_bytes(pickle.dumps(Tripwire()))
    _edit_manifest(package, flavor="pyfunc", pickle=True)
    with pytest.raises(CorruptedData, match=r"does not list the model file model.pkl"):
        load_model(package, allow_pickle=True)
    assert Tripwire.loaded is False


def test_missing_manifest_is_invalid_input(tmp_path: Path, package: Path) -> None:
    (package / MANIFEST_NAME).unlink()
    with pytest.raises(InvalidInput, match="not a loopline model package: it has no"):
        load_model(package)
    with pytest.raises(NotFound, match="no model package"):
        read_manifest(tmp_path / "nowhere")


def test_malformed_yaml_is_invalid_input(package: Path) -> None:
    (package / MANIFEST_NAME).write_text("flavor: [sklearn\nfiles: {")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_model(package)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flavor": None}, "'flavor' must be a str"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"files": {"../model.skops": {"blake3": "0" * 64, "size": 1}}}, "invalid file name"),
        ({"files": {"model.skops": {"blake3": "nothex", "size": 1}}}, "blake3 hash"),
        ({"task_hint": "clustering"}, "task_hint"),
        ({"signature": {"inputs": [{"name": "x", "type": "decimal"}]}}, "unknown type"),
    ],
)
def test_manifest_with_a_bad_field_is_invalid_input(
    package: Path, changes: dict[str, Any], message: str
) -> None:
    _edit_manifest(package, **changes)
    with pytest.raises(InvalidInput, match=message):
        read_manifest(package)


def test_unknown_flavor_is_invalid_input(package: Path) -> None:
    _edit_manifest(package, flavor="tensorflow")
    with pytest.raises(InvalidInput, match="unknown flavor 'tensorflow'"):
        load_model(package)


def test_saving_into_a_non_empty_folder_is_refused(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, target = cancer
    model = LogisticRegression(max_iter=5000).fit(features, target)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(InvalidInput, match="the folder is not empty"):
        save_model(model, tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="not a folder"):
        save_model(model, tmp_path / "file")
    (tmp_path / "empty").mkdir()
    save_model(model, tmp_path / "empty")
    assert load_model(tmp_path / "empty").flavor == "sklearn"


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        save_model(Constant(), tmp_path / "pkg", metadata={"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_pickle_package_needs_allow_pickle(tmp_path: Path) -> None:
    save_model(Constant(), tmp_path / "pkg")
    with pytest.raises(UnsafeModel, match="holds a pickle") as refused:
        load_model(tmp_path / "pkg")
    assert refused.value.hint == (
        "only for packages you trust: pass --allow-pickle (or allow_pickle=True in Python)"
    )
    loaded = load_model(tmp_path / "pkg", allow_pickle=True)
    assert loaded.predict([[1.0], [2.0]]).tolist() == [1, 1]


def test_custom_function_in_a_pipeline_needs_trusted(
    tmp_path: Path, cancer: tuple[pd.DataFrame, Any]
) -> None:
    features, target = cancer
    model = make_pipeline(
        StandardScaler(), FunctionTransformer(clip_outliers), LogisticRegression(max_iter=1000)
    ).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    name = f"{clip_outliers.__module__}.clip_outliers"
    with pytest.raises(UnsafeModel, match="not trusted by default") as refused:
        load_model(tmp_path / "pkg")
    assert name in refused.value.message
    assert refused.value.hint == (
        f"review them, then pass --trust TYPE (or trusted={[name]!r} in Python)"
    )
    loaded = load_model(tmp_path / "pkg", trusted=[name])
    assert np.array_equal(loaded.predict(features), model.predict(features))


def test_trusted_must_be_a_list_of_names(package: Path) -> None:
    with pytest.raises(InvalidInput, match="trusted must be a list"):
        load_model(package, trusted="sklearn.tree._tree.Tree")  # type: ignore[arg-type]
