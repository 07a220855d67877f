"""LoadedModel: a verified package, ready to predict behind its signature."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.packaging._checking import InputChecker

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopline.packaging._manifest import ModelManifest
    from loopline.packaging._predictors import Predictor


class LoadedModel:
    """A model loaded from a package: `predict` and `predict_proba` check input first.

    Input (`data`) is a pandas DataFrame, a list of row dicts, a dict of columns or a
    2-D numpy array (its columns taken in signature order). A signature without
    inputs accepts any of these unchecked.

    Attributes: `manifest`, `flavor`, `signature`, `classes` (labels of a classifier,
    else None) and `raw`, the library's own object (a scikit-learn estimator, an
    xgboost model, a lightgbm Booster, an onnxruntime InferenceSession, ...).
    """

    def __init__(self, manifest: ModelManifest, predictor: Predictor) -> None:
        self.manifest = manifest
        self.flavor = manifest.flavor
        self.signature = manifest.signature
        self.classes = manifest.classes
        self.raw = predictor.raw
        self._predictor = predictor
        self._checker = InputChecker(manifest.signature.inputs)

    @property
    def has_proba(self) -> bool:
        """Whether the model returns class probabilities (`predict_proba`)."""
        return self._predictor.has_proba

    def check_input(self, data: Any) -> pd.DataFrame:
        """`data` as a DataFrame of the signature's columns, in order, of the right types.

        Raises SignatureMismatch (with `field`) for a missing column, a wrong type, or
        a missing value in a column that is not nullable. Extra columns are dropped with
        a SignatureWarning; ints are widened for double columns, whole floats accepted
        for long columns.
        """
        return self._checker.check(data)

    def predict(self, data: Any) -> np.ndarray[Any, Any]:
        """The model's predictions for `data` (class labels for classifiers)."""
        return self._call(self._predictor.predict, data)

    def predict_proba(self, data: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, shape (n, n_classes); InvalidInput if the model has none."""
        if not self.has_proba:
            raise InvalidInput(
                f"this {self.flavor} model ({self.manifest.model_class}) has no predict_proba"
            )
        return self._call(self._predictor.predict_proba, data)

    def _call(
        self, method: Callable[[pd.DataFrame], np.ndarray[Any, Any]], data: Any
    ) -> np.ndarray[Any, Any]:
        refuses_nan = self._predictor.refuses_nan
        frame = self._checker.check(data, scan_missing=not refuses_nan)
        try:
            return method(frame)
        except ValueError as exc:
            if refuses_nan:
                self._checker.check(frame)  # a missing value the model refused: name its column
            raise InvalidInput(f"the model rejected the input: {_first_line(exc)}") from exc

    def __repr__(self) -> str:
        inputs = len(self.signature.inputs)
        return f"<LoadedModel {self.flavor} {self.manifest.model_class} ({inputs} inputs)>"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
