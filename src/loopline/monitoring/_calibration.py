"""Calibration for confidence-based performance estimation (CBPE): isotonic calibrators
fitted on labelled reference data, the expected calibration error (ECE), and whether a
window's probabilities stay where that reference data can vouch for them.

As NannyML does, a calibrator is fitted per class (one-vs-rest isotonic regression of
"the row is this class" on the class's probability; binary: the positive class only) and
used only when it helps: the reference rows are split into CROSS_FOLDS folds (a fixed
seed), calibrators fitted on the other folds are scored on each, and calibration is
kept when the held-out ECE falls. A well calibrated model thus keeps its probabilities
and is not made noisier by isotonic steps. Multiclass rows are renormalised to sum to 1
after calibration.

ECE is evaluation's (`loopline.evaluation._curves.calibration`): 10 equal-width bins;
binary on the positive class's probability, multiclass on the top-label confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

MIN_CALIBRATION_ROWS = 100
"""Fewer labelled reference rows than this fit no calibrator."""
MIN_OUTCOME_ROWS = 10
"""Each class needs this many reference rows of it, and as many of other classes."""
CROSS_FOLDS = 5
COVERAGE_BINS = 10
SPARSER = 5.0
"""A probability bin whose share of reference rows is this many times below its share of
window rows (or empty) cannot vouch for the window's rows there."""


@dataclass(frozen=True)
class Calibration:
    """What the reference data says about the model's probabilities.

    `calibrators` is one fitted isotonic regression per calibrated column (binary: the
    positive class; multiclass: every class), empty when calibration is not used.
    `ece_calibrated` is the cross-validated held-out ECE after calibration (None when no
    calibrator could be fitted); `unfit` says why none could be. `reference` holds the
    reference probabilities (for coverage), `classes` the classes they were fitted for.
    """

    rows: int
    ece_raw: float | None
    ece_calibrated: float | None
    calibrators: tuple[Any, ...]
    unfit: str | None
    reference: Array
    classes: tuple[Any, ...]

    @property
    def calibrated(self) -> bool:
        """Whether the window's probabilities go through the calibrators."""
        return bool(self.calibrators)


def fit_calibration(labels: Array, proba: Array, names: list[Any]) -> Calibration:
    """Fit calibrators on labelled reference rows (`labels` are positions in `names`, the
    classes) and keep them when cross-validation says they lower the ECE."""
    import numpy as np

    binary = len(names) == 2
    ece_raw = ece(labels, proba, binary)
    unfit = _unfit(labels, names)
    if unfit is not None:
        return Calibration(len(labels), ece_raw, None, (), unfit, proba, tuple(names))
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(len(labels)), CROSS_FOLDS)
    raw_scores, calibrated_scores = [], []
    for held_out in folds:
        train = np.ones(len(labels), dtype=bool)
        train[held_out] = False
        fitted = _fit(labels[train], proba[train], binary)
        raw_scores.append(ece(labels[held_out], proba[held_out], binary))
        calibrated = apply_calibration(fitted, proba[held_out], binary)
        calibrated_scores.append(ece(labels[held_out], calibrated, binary))
    ece_calibrated = float(np.mean([s for s in calibrated_scores if s is not None]))
    helps = ece_calibrated < float(np.mean([s for s in raw_scores if s is not None]))
    calibrators = _fit(labels, proba, binary) if helps else ()
    return Calibration(len(labels), ece_raw, ece_calibrated, calibrators, None, proba, tuple(names))


def apply_calibration(calibrators: tuple[Any, ...], proba: Array, binary: bool) -> Array:
    """`proba` through the calibrators (unchanged when there are none), rows summing to 1."""
    import numpy as np

    if not calibrators or not len(proba):
        return proba
    if binary:
        positive = np.clip(calibrators[0].predict(proba[:, 1]), 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])
    columns = [np.clip(model.predict(proba[:, j]), 0.0, 1.0) for j, model in enumerate(calibrators)]
    calibrated = np.column_stack(columns)
    totals = calibrated.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0  # every class calibrated to 0: keep the model's own row
    calibrated[empty], totals[empty] = proba[empty], 1.0
    return calibrated / totals  # type: ignore[no-any-return]


def ece(labels: Array, proba: Array, binary: bool) -> float | None:
    """Evaluation's expected calibration error of `proba` against class positions."""
    from loopline.evaluation import _curves

    classes = list(range(proba.shape[1]))
    value = _curves.calibration("binary" if binary else "multiclass", labels, proba, classes)
    return None if value["ece"] is None else float(value["ece"])


def uncovered_share(reference: Array, window: Array, binary: bool) -> tuple[float, int, int]:
    """The largest share, over the calibrated columns, of window rows whose probability
    falls in a bin (COVERAGE_BINS equal-width bins over [0, 1]) where the reference rows are
    SPARSER times rarer than the window's, or absent.

    A window that merely moves within the reference's range (covariate shift CBPE handles)
    stays covered; one whose probabilities land where the calibration data has (almost)
    nothing does not. Returns (share, column, lowest such bin the window uses in that
    column); (0.0, -1, -1) for an empty window.
    """
    import numpy as np

    if not len(window):
        return 0.0, -1, -1
    worst = (0.0, -1, -1)
    for j in [1] if binary else range(reference.shape[1]):
        window_bins = _bins(window[:, j])
        reference_share = np.bincount(_bins(reference[:, j]), minlength=COVERAGE_BINS) / len(
            reference
        )
        window_share = np.bincount(window_bins, minlength=COVERAGE_BINS) / len(window)
        sparse = reference_share * SPARSER < window_share
        share = float(window_share[sparse].sum())
        if share > worst[0]:
            worst = (share, j, int(np.flatnonzero(sparse & (window_share > 0))[0]))
    return worst


def _bins(values: Array) -> Array:
    import numpy as np

    bins: Array = np.clip((values * COVERAGE_BINS).astype(int), 0, COVERAGE_BINS - 1)
    return bins


def _unfit(labels: Array, names: list[Any]) -> str | None:
    """Why no calibrator can be fitted on these reference labels, or None."""
    import numpy as np

    if len(labels) < MIN_CALIBRATION_ROWS:
        return f"{len(labels)} calibration rows, {MIN_CALIBRATION_ROWS} needed"
    counts = np.bincount(labels, minlength=len(names))
    for j in [1] if len(names) == 2 else range(len(names)):
        fewest = min(int(counts[j]), len(labels) - int(counts[j]))
        if fewest < MIN_OUTCOME_ROWS:
            return (
                f"class {names[j]!r} has {int(counts[j])} of {len(labels)} calibration rows; "
                f"each class needs {MIN_OUTCOME_ROWS} rows of it and {MIN_OUTCOME_ROWS} of others"
            )
    return None


def _fit(labels: Array, proba: Array, binary: bool) -> tuple[Any, ...]:
    from sklearn.isotonic import IsotonicRegression

    fitted = []
    for j in [1] if binary else range(proba.shape[1]):
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        fitted.append(model.fit(proba[:, j], (labels == j).astype(float)))
    return tuple(fitted)
