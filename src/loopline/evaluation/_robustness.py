"""How much predictions move under a little noise on the numeric features.

Every numeric feature gets Gaussian noise with a standard deviation of `noise` times its own
(seeded, all features at once); classifiers report the fraction of rows whose predicted
label changes, regressors the mean absolute change of the prediction relative to the
target's standard deviation. The features are the model's inputs (its signature), not every
column of the evaluation data: an `id` or a slice column the model never reads is not
perturbed, and is not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    Array = npt.NDArray[Any]

NOISE = 0.01


def robustness(
    predict: Callable[[pd.DataFrame], Array],
    features: pd.DataFrame,
    baseline: Array,
    *,
    task: str,
    y: Array,
    seed: int,
    noise: float = NOISE,
    inputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """{"flip_rate", "mean_abs_change", "noise", "features"}; the measure that does not apply
    to the task (or cannot be measured: no numeric feature varies) is None.

    `inputs` names the model's input columns (None: every column of `features` is one);
    only those are perturbed and listed in "features".
    """
    import numpy as np

    noisy, perturbed = perturb(features, noise=noise, seed=seed, only=inputs)
    result: dict[str, Any] = {
        "flip_rate": None,
        "mean_abs_change": None,
        "noise": noise,
        "features": perturbed,
    }
    if not perturbed:
        return result
    moved = np.asarray(predict(noisy))
    if task != "regression":
        result["flip_rate"] = float(np.mean(moved != baseline))
        return result
    scale = float(np.std(y.astype(float)))
    change = np.abs(moved.astype(float) - baseline.astype(float))
    change = change[np.isfinite(change)]
    if scale > 0 and len(change):
        result["mean_abs_change"] = float(change.mean()) / scale
    return result


def perturb(
    features: pd.DataFrame, *, noise: float, seed: int, only: Sequence[str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """A copy of `features` with noise on each numeric, non-boolean column that varies (of
    the columns `only` names, if given), and the names of those columns (in column order)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    noisy = features.copy()
    perturbed: list[str] = []
    wanted = None if only is None else set(only)
    for name in features.columns:
        if wanted is not None and name not in wanted:
            continue
        column = features[name]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        values = column.to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        std = float(finite.std()) if len(finite) else 0.0
        if std <= 0:
            continue
        noisy[name] = values + rng.normal(0.0, noise * std, size=len(values))
        perturbed.append(str(name))
    return noisy, perturbed
