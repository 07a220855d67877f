"""Checked inputs of the performance modules: one-dimensional arrays, class probabilities,
and labels matched to the model's classes.

Labels and predictions often arrive with different types: the model predicts the integer
1, the feedback says "1" (JSON, a CSV) or True. `class_indexes` maps each value to the
position of its class in `classes`, in two steps:

1. exact: a value equal to a class under Python's `==` (1, np.int64(1), 1.0 and True are
   all the class 1; "a" and np.str_("a") are the class "a");
2. else by canonical text, so that the comparison happens as the classes' own type:
   booleans and the texts "true"/"false" (any case) are "1"/"0"; a whole number and the
   text of one ("1", " 1 ", "1.0", 1.0) is its integer's text; another number is its
   float's text ("0.5"); other text is stripped. Two classes with the same canonical text
   ("1" and 1 in one model) make that step ambiguous, so those classes match exactly only.

A value that matches no class raises InvalidInput naming it and the classes; a missing
value (None, NaN) raises too: an unlabelled row is not a label.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

PROBABILITY_TOLERANCE = 1e-6
"""How far below 0 or above 1 a probability may stray from float rounding."""
ROW_SUM_TOLERANCE = 1e-3
"""How far a row of class probabilities may sum from 1 (float32 softmax outputs drift)."""
SHOWN_VALUES = 5


def column(values: Any, name: str) -> Array:
    """`values` as a one-dimensional numpy array (an (n, 1) column is flattened).

    Raises InvalidInput for a scalar, a string or a mapping, or more than one column.
    """
    import numpy as np

    if values is None or isinstance(values, str | bytes | Mapping) or np.isscalar(values):
        raise InvalidInput(f"{name} must be an array of values, got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{name} could not be read as an array: {exc}") from exc
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def same_length(**arrays: Array | None) -> int:
    """The common length of the given arrays (None entries are skipped).

    Raises InvalidInput naming the lengths when they differ.
    """
    lengths = {name: len(array) for name, array in arrays.items() if array is not None}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise InvalidInput(f"the arrays must have one row each; {described}")
    return next(iter(lengths.values()), 0)


def numbers_column(values: Any, name: str) -> Array:
    """`values` as a one-dimensional float array of finite numbers.

    Raises InvalidInput for text that is not a number, NaN or infinity.
    """
    import numpy as np

    array = column(values, name)
    try:
        floats = array.astype(float)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{name} must hold numbers: {exc}") from exc
    bad = ~np.isfinite(floats)
    if bad.any():
        first = int(np.argmax(bad))
        raise InvalidInput(
            f"{name} holds {int(bad.sum())} NaN or infinite values (first at row {first})"
        )
    return floats


def checked_classes(classes: Any) -> list[Any]:
    """`classes` as a list of at least two distinct, non-missing labels.

    Raises InvalidInput for a string, duplicates, a missing label or fewer than two.
    """
    if classes is None or isinstance(classes, str | bytes | Mapping):
        raise InvalidInput(f"classes must be a list of labels, got {type(classes).__name__}")
    try:
        labels = [_plain(label) for label in classes]
    except TypeError as exc:
        raise InvalidInput(f"classes must be a list of labels: {exc}") from exc
    if len(labels) < 2:
        raise InvalidInput(f"a classifier needs at least 2 classes, got {labels}")
    for label in labels:
        if _missing(label):
            raise InvalidInput(f"classes hold a missing label: {labels[:SHOWN_VALUES]}")
        if not isinstance(label, numbers.Number | str | bytes):
            raise InvalidInput(f"a class must be a number, text or bool, got {label!r}")
    if len(set(labels)) != len(labels):
        raise InvalidInput(f"classes hold duplicates: {labels}")
    return labels


def class_indexes(values: Array, classes: Sequence[Any], name: str) -> Array:
    """The position in `classes` of each value's class (see the module docstring), as int64.

    Raises InvalidInput for a missing value or one that matches no class.
    """
    import numpy as np
    import pandas as pd

    if not len(values):
        return np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        first = int(np.argmax(codes < 0))
        raise InvalidInput(
            f"{name} holds {int((codes < 0).sum())} missing values (first at row {first})"
        )
    exact = {label: index for index, label in enumerate(classes)}
    canonical = _canonical_lookup(classes)
    positions = np.empty(len(uniques), dtype=np.int64)
    unmatched = []
    for number, value in enumerate(np.asarray(uniques, dtype=object)):
        value = _plain(value)
        position = exact.get(value) if _hashable(value) else None
        if position is None:
            position = canonical.get(_canonical(value))
        if position is None:
            unmatched.append(value)
        positions[number] = -1 if position is None else position
    if unmatched:
        raise InvalidInput(
            f"{name} holds values that match no class: {unmatched[:SHOWN_VALUES]}"
            f"{' ...' if len(unmatched) > SHOWN_VALUES else ''}; the classes are "
            f"{list(classes)[: SHOWN_VALUES * 4]}"
        )
    return positions[codes]


def probability_matrix(values: Any, classes: int, rows: int | None, name: str) -> Array:
    """`values` as a float array of shape (rows, classes), each row summing to ~1.

    A one-dimensional array is accepted for two classes: the probability of the second.
    Raises InvalidInput for another shape, NaN or infinity, a value outside [0, 1] or a row
    that does not sum to 1 within ROW_SUM_TOLERANCE.
    """
    import numpy as np

    if values is None or isinstance(values, str | bytes | Mapping) or np.isscalar(values):
        raise InvalidInput(f"{name} must be an array of probabilities, got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=float)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{name} must hold numbers: {exc}") from exc
    if array.ndim == 1 and classes == 2:
        array = np.column_stack([1.0 - array, array])
    expected = (array.shape[0] if rows is None else rows, classes)
    if array.ndim != 2 or array.shape != expected:
        raise InvalidInput(
            f"{name} must have shape {expected} (one row per prediction, one column per "
            f"class), got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name} holds NaN or infinite values")
    low, high = float(array.min(initial=0.0)), float(array.max(initial=1.0))
    if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
        raise InvalidInput(f"{name} must lie in [0, 1]; found values from {low:g} to {high:g}")
    off = np.abs(array.sum(axis=1) - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        first = int(np.argmax(off))
        raise InvalidInput(
            f"each row of {name} must sum to 1; {int(off.sum())} rows do not (row {first} "
            f"sums to {float(array[first].sum()):g})"
        )
    clipped: Array = np.clip(array, 0.0, 1.0)
    return clipped


def checked_fraction(value: Any, name: str) -> float:
    """`value` as a float strictly between 0 and 1; raises InvalidInput otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a number between 0 and 1, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and 0.0 < number < 1.0):
        raise InvalidInput(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return number


def plain_label(value: Any) -> Any:
    """A class label as a JSON-ready Python value (numpy scalars become int, float, str)."""
    value = _plain(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, bool | int | float | str) else str(value)


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (np.int64(1) -> 1); other values unchanged."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0:
        return item()
    return value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _canonical(value: Any) -> str | None:
    """The text two labels share when they name the same class (module docstring, step 2)."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _number_text(float(value))
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return "1" if text.lower() == "true" else "0"
        try:
            number = float(text)
        except ValueError:
            return text
        return _number_text(number) if math.isfinite(number) else text
    return None


def _number_text(number: float) -> str | None:
    if not math.isfinite(number):
        return None
    return str(int(number)) if number.is_integer() else repr(number)


def _canonical_lookup(classes: Sequence[Any]) -> dict[str | None, int]:
    """Canonical text -> class position, leaving out texts that two classes share."""
    seen: dict[str | None, int] = {}
    shared: set[str | None] = set()
    for index, label in enumerate(classes):
        text = _canonical(label)
        if text in seen:
            shared.add(text)
        seen[text] = index
    return {text: index for text, index in seen.items() if text not in shared and text is not None}
