"""A numeric column's drift summary: fine reference quantile bins, streamed and mergeable.

The reference (a dataset version, held whole while its summary is built) is sorted once;
its unique quantiles at `fine_bins` resolution become the `edges`. A window is never held:
each batch adds to counts over the same cells, so two windows merge by adding counts.

Cells (2m + 1 for m edges, in order): below the first edge, then for each edge the value
exactly at it followed by the open interval up to the next edge; the last open interval
is "above the last edge". Counting a value AT an edge apart from the interval after it
keeps ties exact: a column with few distinct values gets one edge per value, and the
cumulative counts give both CDFs exactly at every edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loopline.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: past this many effective rows the KS p-value is Kolmogorov's limit (see numeric_statistics)
KS_LIMIT_N = 10_000
#: proportions below this count as this in PSI (Evidently's choice for empty bins)
PSI_EPSILON = 1e-4
#: a window's batch is sorted this many values at a time (1 MB: fits in a CPU's cache)
SORT_ROWS = 131_072


def as_float_values(values: object, *, what: str = "values") -> FloatArray:
    """`values` as a flat float64 array (NaN for nulls).

    Raises InvalidInput when the values are not numbers (text, objects, dates).
    """
    if isinstance(values, (str, bytes)) or values is None:
        raise InvalidInput(f"{what} must be an array of numbers, got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be an array of numbers: {exc}") from exc
    if array.dtype.kind not in "biuf":
        if array.dtype == object and array.size:
            raise InvalidInput(
                f"{what} must be numbers; got an array of objects (declare it categorical)"
            )
        if array.dtype != object:
            raise InvalidInput(f"{what} must be numbers, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64).reshape(-1)


@dataclass
class _Moments:
    """Count, nulls, non-finite values, min, max, sum and sum of squares of finite values."""

    count: int = 0
    nulls: int = 0
    nonfinite: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    total: float = 0.0
    squares: float = 0.0

    def add_sorted(self, ordered: FloatArray) -> FloatArray:
        """Add a batch sorted by np.sort (NaN last); return its finite values (a view)."""
        start = int(np.searchsorted(ordered, -np.inf, side="right"))
        end = int(np.searchsorted(ordered, np.inf, side="left"))
        top = int(np.searchsorted(ordered, np.inf, side="right"))
        self.nulls += ordered.size - top
        self.nonfinite += start + top - end
        finite = ordered[start:end]
        if finite.size:
            self.count += int(finite.size)
            self.minimum = min(self.minimum, float(finite[0]))
            self.maximum = max(self.maximum, float(finite[-1]))
            with np.errstate(over="ignore", invalid="ignore"):
                self.total += float(finite.sum())
                # not np.dot: BLAS threads cost 50x more on a busy two-core machine
                self.squares += float(np.square(finite).sum())
        return finite

    def merge(self, other: _Moments) -> None:
        self.count += other.count
        self.nulls += other.nulls
        self.nonfinite += other.nonfinite
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.total += other.total
        self.squares += other.squares

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "nulls": self.nulls,
            "nonfinite": self.nonfinite,
            "min": _json_float(self.minimum) if self.count else None,
            "max": _json_float(self.maximum) if self.count else None,
            "sum": _json_float(self.total),
            "sum_of_squares": _json_float(self.squares),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Moments:
        return cls(
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            nonfinite=int(data["nonfinite"]),
            minimum=math.inf if data["min"] is None else _float(data["min"]),
            maximum=-math.inf if data["max"] is None else _float(data["max"]),
            total=_float(data["sum"]),
            squares=_float(data["sum_of_squares"]),
        )


@dataclass(frozen=True, eq=False)
class NumericReference:
    """The reference side of a numeric column: edges, counts per cell, moments, PSI bins.

    `edges` are the unique reference quantiles at `fine_bins` resolution (observed values,
    numpy's "inverted_cdf" quantile), `counts` the reference rows per cell (see the module
    docstring), `psi_groups` and `histogram_groups` the first cell of each reference
    quantile bin (10 and 20 of them, fewer when ties collapse).
    """

    edges: FloatArray
    counts: IntArray
    moments: _Moments
    mean: float
    std: float
    psi_groups: IntArray
    histogram_groups: IntArray
    fine_bins: int = 2048

    @classmethod
    def build(
        cls, values: object, *, fine_bins: int = 2048, psi_bins: int = 10
    ) -> NumericReference:
        """The summary of the reference values (NaN = null, +/-inf counted apart).

        Returns a NumericReference; raises InvalidInput for values that are not numbers
        or bin counts that are not integers >= 2.
        """
        for name, bins in (("fine_bins", fine_bins), ("psi_bins", psi_bins)):
            if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
                raise InvalidInput(f"{name} must be an integer >= 2, got {bins!r}")
        array = as_float_values(values, what="reference values")
        moments = _Moments()
        finite = moments.add_sorted(np.sort(array))
        if finite.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(
                np.zeros(0), np.zeros(1, dtype=np.int64), moments, math.nan, math.nan,
                empty, empty, fine_bins,
            )  # fmt: skip
        edges = _unique_sorted(finite[_quantile_positions(finite.size, fine_bins)])
        counts = _cell_counts(finite, edges)
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(finite.mean())
            std = float(finite.std())
        return cls(
            edges=edges,
            counts=counts,
            moments=moments,
            mean=mean,
            std=std,
            psi_groups=_quantile_groups(finite, edges, psi_bins),
            histogram_groups=_quantile_groups(finite, edges, 20),
            fine_bins=fine_bins,
        )

    @property
    def largest_bin_share(self) -> float:
        """The largest reference share inside one open cell: the KS statistic's error bound."""
        if self.moments.count == 0 or self.edges.size < 2:
            return 0.0
        return float(self.counts[2:-1:2].max(initial=0) / self.moments.count)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `NumericReference.from_dict` reads it back."""
        return {
            "kind": "numeric",
            "fine_bins": self.fine_bins,
            "edges": [float(edge) for edge in self.edges],
            "counts": self.counts.tolist(),
            "moments": self.moments.to_dict(),
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "psi_groups": self.psi_groups.tolist(),
            "histogram_groups": self.histogram_groups.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericReference:
        """The reference `to_dict` wrote; raises InvalidInput when it is not one."""
        try:
            edges = np.asarray(data["edges"], dtype=np.float64)
            counts = np.asarray(data["counts"], dtype=np.int64)
            if data.get("kind") != "numeric" or counts.size != 2 * edges.size + 1:
                raise ValueError("not a numeric reference")
            return cls(
                edges=edges,
                counts=counts,
                moments=_Moments.from_dict(data["moments"]),
                mean=_float(data["mean"]),
                std=_float(data["std"]),
                psi_groups=np.asarray(data["psi_groups"], dtype=np.int64),
                histogram_groups=np.asarray(data["histogram_groups"], dtype=np.int64),
                fine_bins=int(data["fine_bins"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a numeric reference summary: {exc}") from exc


@dataclass(eq=False)
class NumericWindow:
    """The current side of a numeric column, fed batch by batch; memory is O(edges).

    Keeps the moments, the counts per reference cell, and for Wasserstein's tails the
    count and sum of values below the reference min and above its max (`below_min`,
    `above_max` are also the integrity check's out-of-range counts).
    """

    reference: NumericReference
    moments: _Moments = field(default_factory=_Moments)
    counts: IntArray = field(init=False)
    below_min: int = 0
    below_sum: float = 0.0
    above_max: int = 0
    above_sum: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.reference, NumericReference):
            raise InvalidInput(
                f"reference must be a NumericReference, got {type(self.reference).__name__}"
            )
        self.counts = np.zeros(self.reference.counts.size, dtype=np.int64)

    @property
    def rows(self) -> int:
        """Rows seen, nulls and non-finite values included."""
        return self.moments.count + self.moments.nulls + self.moments.nonfinite

    def update(self, values: object) -> None:
        """Add one batch of values (NaN = null). Raises InvalidInput for non-numbers.

        The batch is sorted (cheaper than a binary search per value: the edges are then
        looked up in the batch, not the batch in the edges), SORT_ROWS values at a time:
        a slice that fits in the CPU's cache sorts and is searched twice as fast as a
        million values at once.
        """
        array = as_float_values(values)
        for start in range(0, array.size, SORT_ROWS):
            self._add(array[start : start + SORT_ROWS])

    def _add(self, values: FloatArray) -> None:
        finite = self.moments.add_sorted(np.sort(values))
        edges = self.reference.edges
        if finite.size == 0:
            return
        if edges.size == 0:
            self.counts[0] += finite.size
            return
        counts = _cell_counts(finite, edges)
        self.counts += counts
        with np.errstate(over="ignore", invalid="ignore"):
            if counts[0]:
                self.below_min += int(counts[0])
                self.below_sum += float(finite[: counts[0]].sum())
            if counts[-1]:
                self.above_max += int(counts[-1])
                self.above_sum += float(finite[finite.size - counts[-1] :].sum())

    def merge(self, other: NumericWindow) -> None:
        """Add another window over the same reference into this one."""
        if not isinstance(other, NumericWindow):
            raise InvalidInput(f"can only merge a NumericWindow, got {type(other).__name__}")
        if other.counts.size != self.counts.size or not np.array_equal(
            other.reference.edges, self.reference.edges
        ):
            raise InvalidInput("cannot merge windows built on different references")
        self.moments.merge(other.moments)
        self.counts += other.counts
        self.below_min += other.below_min
        self.below_sum += other.below_sum
        self.above_max += other.above_max
        self.above_sum += other.above_sum

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (without the reference); `from_dict(data, reference)` reads it."""
        return {
            "moments": self.moments.to_dict(),
            "counts": self.counts.tolist(),
            "below_min": self.below_min,
            "below_sum": _json_float(self.below_sum),
            "above_max": self.above_max,
            "above_sum": _json_float(self.above_sum),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], reference: NumericReference) -> NumericWindow:
        """The window `to_dict` wrote, over `reference`; raises InvalidInput otherwise."""
        window = cls(reference)
        try:
            counts = np.asarray(data["counts"], dtype=np.int64)
            if counts.shape != window.counts.shape:
                raise ValueError("its counts do not match the reference's cells")
            window.counts = counts
            window.moments = _Moments.from_dict(data["moments"])
            window.below_min = int(data["below_min"])
            window.below_sum = _float(data["below_sum"])
            window.above_max = int(data["above_max"])
            window.above_sum = _float(data["above_sum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a numeric window summary: {exc}") from exc
        return window


def numeric_statistics(reference: NumericReference, window: NumericWindow) -> dict[str, Any]:
    """PSI, KS statistic and p-value, normed Wasserstein-1 of the window against the reference.

    Returns a dict of floats (NaN where undefined: no values on one side):
    - `psi` over the reference's quantile bins plus a "below min" and an "above max" bin;
      a share under PSI_EPSILON (1e-4, empty bins) counts as PSI_EPSILON.
    - `ks`: the largest CDF difference at the edges (both sides of every edge). Inside an
      open cell the reference CDF moves by at most that cell's reference share, so the
      exact two-sample statistic lies in [ks, ks + reference.largest_bin_share] (about
      1/fine_bins = 1/2048 for continuous data; exact for columns with few values).
    - `ks_pvalue`: Smirnov's asymptotic two-sided p-value, as scipy.stats.ks_2samp(...,
      method="asymp"): kstwo.sf(ks, round(n*m/(n+m))); past KS_LIMIT_N (10,000) effective
      rows, Kolmogorov's limit kstwobign.sf(ks * sqrt(n)) (the same to ~1e-3 relative
      there, and 0.3 ms instead of up to 1.5 s a column at a million rows).
    - `wasserstein`: the area between the CDFs (linear inside each open cell, exact in the
      tails below min and above max from their counts and sums), divided by the reference
      std; when that std is 0 (a constant reference) it is NOT divided: the distance stays
      in the column's units, since any move away from a constant is a change.
    """
    from scipy.stats import kstwo, kstwobign

    n_ref, n_cur = reference.moments.count, window.moments.count
    nan = math.nan
    if n_ref == 0 or n_cur == 0:
        return {"psi": nan, "ks": nan, "ks_pvalue": nan, "wasserstein": nan}
    ref_cdf = np.cumsum(reference.counts) / n_ref
    cur_cdf = np.cumsum(window.counts) / n_cur
    ks = float(np.abs(ref_cdf - cur_cdf).max())
    effective = max(1.0, float(np.round(n_ref * n_cur / (n_ref + n_cur))))
    if effective > KS_LIMIT_N:
        pvalue = float(np.clip(kstwobign.sf(ks * math.sqrt(effective)), 0.0, 1.0))
    else:
        pvalue = float(np.clip(kstwo.sf(ks, effective), 0.0, 1.0))
    psi = _psi(
        _grouped(reference.counts, reference.psi_groups) / n_ref,
        _grouped(window.counts, reference.psi_groups) / n_cur,
    )
    distance = _wasserstein(reference, window, ref_cdf, cur_cdf)
    scale = reference.std if reference.std > 0 and math.isfinite(reference.std) else 1.0
    return {"psi": psi, "ks": ks, "ks_pvalue": pvalue, "wasserstein": distance / scale}


def numeric_histogram(reference: NumericReference, window: NumericWindow) -> list[dict[str, Any]]:
    """Reference and window shares in (up to) 20 reference quantile bins plus below/above.

    Each bin is {"low", "high", "reference", "current"}; "below" has low None and "above"
    high None (JSON-safe). Quantile bins, not equal-width ones: every bin holds ~5 % of the
    reference, so a shift shows wherever the reference has mass.
    """
    edges = reference.edges
    if edges.size == 0:
        return []
    groups = reference.histogram_groups
    ref_shares = _grouped(reference.counts, groups) / max(reference.moments.count, 1)
    cur_shares = _grouped(window.counts, groups) / max(window.moments.count, 1)
    # bounds: the edge each group starts at; cell 2j+1 is "at edge j"
    starts: list[float | None] = [float(edges[(start - 1) // 2]) for start in groups]
    lows = [None, *starts, float(edges[-1])]
    highs = [float(edges[0]), *starts[1:], float(edges[-1]), None]
    return [
        {"low": low, "high": high, "reference": float(ref), "current": float(cur)}
        for low, high, ref, cur in zip(lows, highs, ref_shares, cur_shares, strict=True)
    ]


def _cell_counts(ordered: FloatArray, edges: FloatArray) -> IntArray:
    """Counts per cell (below, at e0, between e0 and e1, ..., above) of sorted finite values."""
    bounds = np.empty(2 * edges.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, ordered.size
    bounds[1:-1:2] = np.searchsorted(ordered, edges, side="left")
    bounds[2:-1:2] = np.searchsorted(ordered, edges, side="right")
    return np.diff(bounds)


def _grouped(counts: IntArray, groups: IntArray) -> IntArray:
    """Counts summed into [below, each group of inner cells, above]."""
    inner = np.add.reduceat(counts[1:-1], groups - 1) if counts.size > 2 else counts[:0]
    return np.concatenate([counts[:1], inner, counts[-1:]])


def _psi(expected: FloatArray, actual: FloatArray) -> float:
    expected = np.maximum(expected, PSI_EPSILON)
    actual = np.maximum(actual, PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _wasserstein(
    reference: NumericReference, window: NumericWindow, ref_cdf: FloatArray, cur_cdf: FloatArray
) -> float:
    edges = reference.edges
    n_cur = window.moments.count
    with np.errstate(over="ignore", invalid="ignore"):
        tails = (window.below_min * edges[0] - window.below_sum) + (
            window.above_sum - window.above_max * edges[-1]
        )
        tails /= n_cur
        # open cell (e_j, e_j+1): CDFs just after e_j (cell 2j+1) and just before e_j+1
        start = ref_cdf[1:-2:2] - cur_cdf[1:-2:2]
        end = ref_cdf[2:-1:2] - cur_cdf[2:-1:2]
        widths = np.diff(edges)
        same_sign = start * end >= 0
        size = np.abs(start) + np.abs(end)
        crossing = np.divide(start**2 + end**2, 2 * size, out=np.zeros_like(size), where=size > 0)
        areas = np.where(same_sign, size / 2, crossing)
        return float(max(tails, 0.0) + np.sum(widths * areas))


def _quantile_positions(size: int, bins: int) -> npt.NDArray[np.intp]:
    """Positions in a sorted array of `size` of the quantiles 0, 1/bins, ..., 1 (inverted CDF)."""
    levels = np.arange(bins + 1) / bins
    return np.clip(np.ceil(levels * size).astype(np.intp) - 1, 0, size - 1)


def _quantile_groups(finite: FloatArray, edges: FloatArray, bins: int) -> IntArray:
    """The first inner cell of each quantile bin; bin k holds the values up to quantile k.

    A quantile that is an edge closes its bin after the cell "at" it; one inside an open
    cell closes its bin before that cell (off by at most one fine bin).
    """
    values = finite[_quantile_positions(finite.size, bins)[1:-1]]
    index = np.searchsorted(edges, values, side="left")
    is_edge = edges[np.minimum(index, edges.size - 1)] == values
    starts = np.unique(np.concatenate([[1], np.where(is_edge, 2 * index + 2, 2 * index)]))
    return starts[(starts >= 1) & (starts < 2 * edges.size)].astype(np.int64)


def _unique_sorted(values: FloatArray) -> FloatArray:
    keep = np.empty(values.size, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _json_float(value: float) -> float | str:
    """A float as JSON can hold it: non-finite values as the strings "inf", "-inf", "nan"."""
    return value if math.isfinite(value) else str(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)
