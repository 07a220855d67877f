"""save_model and load_model: a model <-> a package folder with a verified manifest."""

from __future__ import annotations

import os
import platform
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline._version import __version__
from loopline.errors import InvalidInput, UnsafeModel
from loopline.packaging._checking import InputChecker
from loopline.packaging._flavors import (
    MODEL_FILES,
    Saved,
    detect_flavor,
    save_lightgbm,
    save_pyfunc,
    save_sklearn,
    save_xgboost,
)
from loopline.packaging._loaded import LoadedModel
from loopline.packaging._manifest import (
    ModelManifest,
    hash_file,
    read_manifest,
    read_verified,
    utc_now,
    write_manifest,
)
from loopline.packaging._signature import Signature, example_frame, infer_signature
from loopline.packaging._trust import PICKLE_HINT, check_trusted

if TYPE_CHECKING:
    import pandas as pd

    from loopline.packaging._predictors import Predictor

_Loader = Callable[[bytes, ModelManifest, list[str]], "Predictor"]


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    requirements: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> ModelManifest:
    """Write `model` as a package folder at `path`: its model file and `loopline-model.yaml`.

    `flavor` defaults to detect_flavor(model). The signature is `signature`, else
    inferred from `input_example` (a DataFrame, 2-D array, list of row dicts or dict of
    columns), else taken from a scikit-learn model's `feature_names_in_` (all "double",
    nullable: pass an example for other types), else empty: predict then accepts any
    input unchecked. `requirements` defaults to pins of the libraries the flavor needs.

    Raises InvalidInput if `path` is a non-empty folder or a file, or if the model, its
    example or its metadata cannot be packaged. Nothing is left at `path` on failure.
    """
    folder = Path(path)
    _check_target(folder)
    flavor = detect_flavor(model) if flavor is None else _known_flavor(flavor)
    metadata = _plain_metadata(metadata)
    if requirements is not None and not all(isinstance(line, str) for line in requirements):
        raise InvalidInput("requirements must be a list of strings such as 'numpy==2.1.0'")
    example = None if input_example is None else example_frame(input_example)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.saving"
    staging.mkdir()
    try:
        saved = _save_flavor(flavor, staging, model, example, metadata)
        manifest = ModelManifest(
            flavor=flavor,
            model_class=saved.model_class or f"{type(model).__module__}.{type(model).__qualname__}",
            framework=saved.framework,
            python_version=platform.python_version(),
            loopline_version=__version__,
            created_at=utc_now(),
            signature=_signature(saved, signature, example),
            files={p.name: hash_file(p) for p in sorted(staging.iterdir()) if p.is_file()},
            classes=saved.classes,
            task_hint=saved.task_hint,
            requirements=list(saved.requirements if requirements is None else requirements),
            pickle=saved.pickle,
            metadata=metadata,
            flavor_options=saved.flavor_options,
        )
        write_manifest(staging, manifest)
        if folder.exists():
            folder.rmdir()  # checked empty above; a folder filled since then fails here
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def load_model(
    path: str | os.PathLike[str], *, trusted: list[str] | None = None, allow_pickle: bool = False
) -> LoadedModel:
    """Verify the package at `path`, then load its model safely.

    `trusted` lists the extra types a scikit-learn (skops) file may contain, after you
    reviewed them (scikit-learn's internals and the LightGBM/XGBoost wrappers' types
    are trusted by default); `allow_pickle=True` allows a pyfunc (pickle) package, which can run
    arbitrary code: only for packages you trust.

    Raises InvalidInput (no or malformed manifest, unknown flavor), CorruptedData (a
    listed file is missing or does not match its hash), UnsafeModel (untrusted types,
    or a pickle without allow_pickle) and MissingExtra (the flavor's library is absent).
    """
    folder = Path(path)
    trusted = check_trusted(trusted)
    if not isinstance(allow_pickle, bool):
        raise InvalidInput(f"allow_pickle must be True or False, got {allow_pickle!r}")
    manifest = read_manifest(folder)
    if manifest.flavor not in MODEL_FILES:
        raise InvalidInput(
            f"the package at {folder} has the unknown flavor {manifest.flavor!r}",
            hint=f"known flavors: {', '.join(MODEL_FILES)}; a newer loopline may know it",
        )
    model_file = MODEL_FILES[manifest.flavor]
    data = read_verified(folder, manifest, keep=[model_file])[model_file]
    if (manifest.pickle or manifest.flavor == "pyfunc") and not allow_pickle:
        raise UnsafeModel(
            f"the package at {folder} holds a pickle ({model_file}), which runs arbitrary "
            "code when loaded",
            hint=PICKLE_HINT,
        )
    predictor = _loader(manifest.flavor)(data, manifest, trusted)
    return LoadedModel(manifest, predictor)


def _check_target(folder: Path) -> None:
    if folder.is_dir():
        if any(folder.iterdir()):
            raise InvalidInput(
                f"cannot save a model into {folder}: the folder is not empty",
                hint="choose a new path, or empty the folder first",
            )
    elif folder.exists() or folder.is_symlink():
        raise InvalidInput(f"cannot save a model at {folder}: it exists and is not a folder")


def _known_flavor(flavor: str) -> str:
    if flavor not in MODEL_FILES:
        raise InvalidInput(
            f"unknown flavor {flavor!r}", hint=f"use one of {', '.join(MODEL_FILES)}"
        )
    return flavor


def _plain_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInput("metadata must be a dict with string keys")
    return {key: _plain(value) for key, value in metadata.items()}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, so that YAML can hold them."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _save_flavor(
    flavor: str, folder: Path, model: Any, example: pd.DataFrame | None, metadata: dict[str, Any]
) -> Saved:
    if flavor == "onnx":
        from loopline.packaging._onnx import as_onnx, save_onnx

        if as_onnx(model) is None:
            raise InvalidInput(f"cannot package {type(model).__name__} as onnx: not an ONNX model")
        return save_onnx(folder, model, example, metadata)
    savers = {
        "sklearn": save_sklearn,
        "xgboost": save_xgboost,
        "lightgbm": save_lightgbm,
        "pyfunc": save_pyfunc,
    }
    return savers[flavor](folder, model, example)


def _signature(saved: Saved, given: Signature | None, example: pd.DataFrame | None) -> Signature:
    """The caller's signature (the example must fit it), else one inferred."""
    if given is not None:
        if not isinstance(given, Signature):
            raise InvalidInput(f"signature must be a Signature, got {type(given).__name__}")
        if example is not None:
            InputChecker(given.inputs).check(example)
        return given
    inputs = saved.inputs if example is None else infer_signature(example).inputs
    return Signature(inputs=inputs, outputs=saved.outputs)


def _loader(flavor: str) -> _Loader:
    from loopline.packaging import _predictors

    if flavor == "onnx":
        from loopline.packaging._onnx import load_onnx

        return load_onnx
    loaders: dict[str, _Loader] = {
        "sklearn": _predictors.load_sklearn,
        "xgboost": _predictors.load_xgboost,
        "lightgbm": _predictors.load_lightgbm,
        "pyfunc": _predictors.load_pyfunc,
    }
    return loaders[flavor]
