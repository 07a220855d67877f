"""A categorical column's drift summary: reference value counts, streamed window counts.

Values are compared as text, as Arrow casts them (`true`/`false`, `3`, `2.5`), so a
column of integers and the same column read back as floats name the same categories.
Counting is vectorised in Arrow (`value_counts`, then `index_in` over the distinct values
of a batch); Python only touches distinct values that the reference has never seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: the reference keeps its most frequent categories; the rest count together as "other"
MAX_CATEGORIES = 1000
#: a window remembers at most this many unseen names (more are counted, not named)
MAX_UNSEEN_NAMES = 1000
#: names of unseen categories shown in a verdict
SHOWN_UNSEEN = 20
PSI_EPSILON = 1e-4


def as_text_values(values: object, *, what: str = "values") -> pa.Array:
    """`values` (Arrow, pandas, numpy, list) as an Arrow string array; NaN counts as null.

    Raises InvalidInput for a scalar, mixed types Arrow cannot hold, or nested values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if values is None or isinstance(values, (str, bytes, int, float)):
        raise InvalidInput(f"{what} must be an array, got {type(values).__name__}")
    try:
        if isinstance(values, pa.ChunkedArray):
            array = values.combine_chunks()
        elif isinstance(values, pa.Array):
            array = values
        elif isinstance(values, np.ndarray):
            array = pa.array(values.reshape(-1), from_pandas=True)
        else:
            array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} cannot be read as one column: {exc}") from exc
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_nested(array.type):
        raise InvalidInput(f"{what} must be flat values, got Arrow type {array.type}")
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
    if array.type != pa.string():
        try:
            array = pc.cast(array, pa.string())
        except pa.ArrowException as exc:
            raise InvalidInput(f"{what} of type {array.type} cannot be compared as text") from exc
    return array


def _value_counts(array: pa.Array) -> tuple[pa.Array, IntArray]:
    """The distinct non-null values of a string array and their counts."""
    import pyarrow.compute as pc

    counted = pc.value_counts(array.drop_null())
    return counted.field("values"), counted.field("counts").to_numpy().astype(np.int64)


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """The reference side: the most frequent categories, their counts, "other", nulls."""

    categories: tuple[str, ...]
    counts: IntArray
    other: int
    nulls: int

    @classmethod
    def build(cls, values: object, *, max_categories: int = MAX_CATEGORIES) -> CategoricalReference:
        """Count the reference values; keep the `max_categories` most frequent (ties by name).

        Values beyond those count together as `other`; then a window value that is not among
        the kept categories is counted as "other" too, not as unseen (it may have been seen).
        Raises InvalidInput for values that are not one flat column.
        """
        if isinstance(max_categories, bool) or not isinstance(max_categories, int):
            raise InvalidInput(f"max_categories must be an integer, got {max_categories!r}")
        if max_categories < 1:
            raise InvalidInput(f"max_categories must be >= 1, got {max_categories}")
        array = as_text_values(values, what="reference values")
        names, counts = _value_counts(array)
        order = np.lexsort((np.asarray(names.to_pylist(), dtype=str), -counts))
        kept = order[:max_categories]
        return cls(
            categories=tuple(names.take(kept).to_pylist()),
            counts=counts[kept],
            other=int(counts[order[max_categories:]].sum()),
            nulls=array.null_count,
        )

    @property
    def rows(self) -> int:
        """Reference rows, nulls included."""
        return int(self.counts.sum()) + self.other + self.nulls

    @property
    def complete(self) -> bool:
        """True when every reference category is kept (so unseen values can be named)."""
        return self.other == 0

    @cached_property
    def _value_set(self) -> pa.Array:
        import pyarrow as pa

        return pa.array(self.categories, type=pa.string())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `CategoricalReference.from_dict` reads it back."""
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "other": self.other,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalReference:
        """The reference `to_dict` wrote; raises InvalidInput when it is not one."""
        try:
            categories = tuple(data["categories"])
            counts = np.asarray(data["counts"], dtype=np.int64)
            if data.get("kind") != "categorical" or len(categories) != counts.size:
                raise ValueError("not a categorical reference")
            if not all(isinstance(name, str) for name in categories):
                raise ValueError("categories must be text")
            return cls(categories, counts, int(data["other"]), int(data["nulls"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a categorical reference summary: {exc}") from exc


@dataclass(eq=False)
class CategoricalWindow:
    """The current side: counts per reference category, "other", unseen names, nulls."""

    reference: CategoricalReference
    counts: IntArray = field(init=False)
    other: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_unnamed: int = 0
    nulls: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.reference, CategoricalReference):
            raise InvalidInput(
                f"reference must be a CategoricalReference, got {type(self.reference).__name__}"
            )
        self.counts = np.zeros(len(self.reference.categories), dtype=np.int64)

    @property
    def unseen_rows(self) -> int:
        """Window rows whose category the reference never had."""
        return sum(self.unseen.values()) + self.unseen_unnamed

    @property
    def rows(self) -> int:
        """Window rows, nulls included."""
        return int(self.counts.sum()) + self.other + self.unseen_rows + self.nulls

    def update(self, values: object) -> None:
        """Add one batch of values. Raises InvalidInput when they are not one flat column."""
        import pyarrow.compute as pc

        array = as_text_values(values)
        self.nulls += array.null_count
        names, counts = _value_counts(array)
        if not len(names):
            return
        positions = pc.index_in(names, value_set=self.reference._value_set)
        known = positions.is_valid().to_numpy(zero_copy_only=False)
        if known.any():
            where = positions.drop_null().to_numpy().astype(np.intp)
            np.add.at(self.counts, where, counts[known])
        if known.all():
            return
        if not self.reference.complete:
            self.other += int(counts[~known].sum())
            return
        new_names = names.filter(_arrow_mask(~known)).to_pylist()
        self._add_unseen(dict(zip(new_names, counts[~known].tolist(), strict=True)))

    def _add_unseen(self, found: dict[str, int]) -> None:
        for name, count in found.items():
            if name in self.unseen:
                self.unseen[name] += count
            elif len(self.unseen) < MAX_UNSEEN_NAMES:
                self.unseen[name] = count
            else:
                self.unseen_unnamed += count

    def merge(self, other: CategoricalWindow) -> None:
        """Add another window over the same reference into this one."""
        if not isinstance(other, CategoricalWindow):
            raise InvalidInput(f"can only merge a CategoricalWindow, got {type(other).__name__}")
        if other.reference.categories != self.reference.categories:
            raise InvalidInput("cannot merge windows built on different references")
        self.counts += other.counts
        self.other += other.other
        self.nulls += other.nulls
        self.unseen_unnamed += other.unseen_unnamed
        self._add_unseen(other.unseen)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (without the reference); `from_dict(data, reference)` reads it."""
        return {
            "counts": self.counts.tolist(),
            "other": self.other,
            "unseen": dict(self.unseen),
            "unseen_unnamed": self.unseen_unnamed,
            "nulls": self.nulls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], reference: CategoricalReference) -> CategoricalWindow:
        """The window `to_dict` wrote, over `reference`; raises InvalidInput otherwise."""
        window = cls(reference)
        try:
            counts = np.asarray(data["counts"], dtype=np.int64)
            if counts.shape != window.counts.shape:
                raise ValueError("its counts do not match the reference's categories")
            window.counts = counts
            window.other = int(data["other"])
            window.unseen = {str(name): int(count) for name, count in data["unseen"].items()}
            window.unseen_unnamed = int(data["unseen_unnamed"])
            window.nulls = int(data["nulls"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"not a categorical window summary: {exc}") from exc
        return window


def _arrow_mask(mask: npt.NDArray[np.bool_]) -> pa.Array:
    import pyarrow as pa

    return pa.array(mask, type=pa.bool_())


def categorical_statistics(
    reference: CategoricalReference, window: CategoricalWindow
) -> dict[str, Any]:
    """PSI, chi-square and p-value, Jensen-Shannon distance, unseen categories.

    The categories are the reference's kept ones, "other" and one "unseen" bucket.
    - `psi`: shares under PSI_EPSILON (1e-4) count as PSI_EPSILON.
    - `chi2`, `chi2_pvalue`: the two-sample test of homogeneity on the 2 x k table of
      counts (scipy.stats.chi2_contingency without Yates' correction; categories empty on
      both sides dropped). Not `chisquare` against the reference shares: the reference is
      a sample too, and an unseen category would have an expected count of 0 there.
    - `js`: Jensen-Shannon distance in base 2 (in [0, 1]), as
      scipy.spatial.distance.jensenshannon(p, q, base=2).
    - `unseen`: up to 20 unseen names, most frequent first; `unseen_share`: unseen rows
      over all window rows (nulls included).
    Undefined statistics (no values on one side) are NaN.
    """
    from scipy.stats import chi2 as chi2_distribution

    expected = np.concatenate([reference.counts, [reference.other, 0]]).astype(np.float64)
    observed = np.concatenate([window.counts, [window.other, window.unseen_rows]])
    observed = observed.astype(np.float64)
    unseen = sorted(window.unseen.items(), key=lambda item: (-item[1], item[0]))
    result: dict[str, Any] = {
        "unseen": [name for name, _ in unseen[:SHOWN_UNSEEN]],
        "unseen_share": window.unseen_rows / window.rows if window.rows else math.nan,
    }
    n_ref, n_cur = expected.sum(), observed.sum()
    if n_ref == 0 or n_cur == 0:
        return {**result, "psi": math.nan, "chi2": math.nan, "chi2_pvalue": math.nan,
                "js": math.nan}  # fmt: skip
    ref_share, cur_share = expected / n_ref, observed / n_cur
    floor_ref = np.maximum(ref_share, PSI_EPSILON)
    floor_cur = np.maximum(cur_share, PSI_EPSILON)
    psi = float(np.sum((floor_cur - floor_ref) * np.log(floor_cur / floor_ref)))
    table = np.stack([expected, observed])[:, (expected + observed) > 0]
    if table.shape[1] < 2:
        statistic, pvalue = 0.0, 1.0
    else:
        totals = table.sum(axis=1, keepdims=True)
        fitted = totals * table.sum(axis=0, keepdims=True) / totals.sum()
        statistic = float(np.sum((table - fitted) ** 2 / fitted))
        pvalue = float(chi2_distribution.sf(statistic, table.shape[1] - 1))
    return {**result, "psi": psi, "chi2": statistic, "chi2_pvalue": pvalue,
            "js": _jensen_shannon(ref_share, cur_share)}  # fmt: skip


def categorical_histogram(
    reference: CategoricalReference, window: CategoricalWindow, *, top: int = 20
) -> list[dict[str, Any]]:
    """Shares of the 20 most frequent reference categories, then "(other)" and "(unseen)".

    Each entry is {"category", "reference", "current"}; shares are of non-null values.
    """
    n_ref = max(int(reference.counts.sum()) + reference.other, 1)
    n_cur = max(int(window.counts.sum()) + window.other + window.unseen_rows, 1)
    bins = [
        {"category": name, "reference": int(ref) / n_ref, "current": int(cur) / n_cur}
        for name, ref, cur in zip(
            reference.categories[:top], reference.counts[:top], window.counts[:top], strict=True
        )
    ]
    rest_ref = int(reference.counts[top:].sum()) + reference.other
    rest_cur = int(window.counts[top:].sum()) + window.other
    if rest_ref or rest_cur:
        bins.append({"category": "(other)", "reference": rest_ref / n_ref,
                     "current": rest_cur / n_cur})  # fmt: skip
    if window.unseen_rows:
        bins.append({"category": "(unseen)", "reference": 0.0,
                     "current": window.unseen_rows / n_cur})  # fmt: skip
    return bins


def _jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    middle = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / middle), 0.0)
        right = np.where(q > 0, q * np.log2(q / middle), 0.0)
    divergence = max(float(left.sum() + right.sum()) / 2, 0.0)
    return min(math.sqrt(divergence), 1.0)
