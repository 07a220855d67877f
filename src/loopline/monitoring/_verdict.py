"""Per-feature verdicts: thresholds, the FeatureDrift record, and the rule that decides.

A feature drifted when its test says the difference is real (p-value below `p_value`)
AND an effect size says it matters (above its threshold). A p-value alone flags tiny,
harmless differences once windows hold 100,000 rows; an effect size alone flags noise in
small windows. Defaults come from benchmarks/bench_monitoring.py --only quality: with
p_value 0.01 the KS test's asymptotic p-value alone flagged 1.25 % of 2,000 unshifted
columns at n = 1,000 (the effect sizes cut that only to 0.95 %), so p_value is 0.005
(0.45 %); wasserstein 0.1 sd sits at half the 0.2 sd shift that must be caught at
n >= 10,000, where the distance's noise is ~0.01 sd.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from loopline.errors import InvalidInput
from loopline.monitoring._categorical import (
    CategoricalReference,
    CategoricalWindow,
    categorical_histogram,
    categorical_statistics,
)
from loopline.monitoring._numeric import (
    NumericReference,
    NumericWindow,
    numeric_histogram,
    numeric_statistics,
)

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class DriftThresholds:
    """Effect sizes above which a significant difference counts as drift.

    psi: population stability index (numeric and categorical); wasserstein: Wasserstein-1
    distance in reference standard deviations (numeric); js: Jensen-Shannon distance
    (categorical); unseen_share: share of window rows in categories the reference never
    had (categorical); p_value: the KS (numeric) or chi-square (categorical) p-value must
    be below it. Raises InvalidInput for a threshold that is not a finite number > 0, or a
    p_value outside (0, 1).
    """

    psi: float = 0.1
    wasserstein: float = 0.1
    js: float = 0.05
    unseen_share: float = 0.01
    p_value: float = 0.005

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"threshold {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise InvalidInput(f"threshold {name} must be finite and > 0, got {value!r}")
        if self.p_value >= 1:
            raise InvalidInput(f"threshold p_value must be in (0, 1), got {self.p_value!r}")

    def with_(self, **changes: float) -> DriftThresholds:
        """A copy with some thresholds changed; raises InvalidInput for an unknown name."""
        unknown = sorted(set(changes) - set(asdict(self)))
        if unknown:
            known = ", ".join(asdict(self))
            raise InvalidInput(f"unknown threshold {unknown[0]!r}; known: {known}")
        return replace(self, **changes)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict, its statistics and a small histogram for plots.

    `kind` is "numeric" or "categorical" (the reference's); `reasons` names the
    statistics that crossed their thresholds, or says why there is no verdict ("no rows",
    "no values", "no reference values") or that the column's type differs between the
    two sides ("type mismatch": then `problem` says how, and drifted is True, so that the
    report cannot miss it; integrity reports it as a type problem).
    Statistics that do not apply or cannot be computed are None.
    `integrity`: numeric {nulls, nonfinite, below_min, above_max, out_of_range_share (of all
    window rows), mean, reference_mean}; categorical {nulls, unseen_rows, unseen_share}.
    `histogram`: numeric bins {low, high, reference, current} (see numeric_histogram),
    categorical {category, reference, current}; shares of each side's values.
    """

    name: str
    kind: Kind
    drifted: bool
    reasons: tuple[str, ...]
    reference_rows: int
    current_rows: int
    null_rate: float | None
    psi: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    js: float | None = None
    unseen: tuple[str, ...] | None = None
    unseen_share: float | None = None
    integrity: Mapping[str, Any] = field(default_factory=dict)
    histogram: tuple[Mapping[str, Any], ...] = ()
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: `drifted`, the statistics of its kind (None, never NaN), the rest."""
        names = NUMERIC_STATISTICS if self.kind == "numeric" else CATEGORICAL_STATISTICS
        return {
            "name": self.name,
            "kind": self.kind,
            "drifted": self.drifted,
            **{key: _clean(getattr(self, key)) for key in names},
            "reasons": list(self.reasons),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "null_rate": _clean(self.null_rate),
            "integrity": {key: _clean(value) for key, value in self.integrity.items()},
            "histogram": [
                {key: _clean(value) for key, value in entry.items()} for entry in self.histogram
            ],
            "problem": self.problem,
        }


NUMERIC_STATISTICS = ("psi", "ks", "ks_pvalue", "wasserstein")
CATEGORICAL_STATISTICS = ("psi", "chi2", "chi2_pvalue", "js", "unseen", "unseen_share")


def judge(
    name: str,
    reference: NumericReference | CategoricalReference,
    window: NumericWindow | CategoricalWindow,
    thresholds: DriftThresholds | None = None,
) -> FeatureDrift:
    """The verdict for one feature from its reference summary and its window.

    Returns a FeatureDrift; raises InvalidInput when the window does not belong to the
    reference or thresholds is not a DriftThresholds.
    """
    thresholds = DriftThresholds() if thresholds is None else thresholds
    if not isinstance(thresholds, DriftThresholds):
        raise InvalidInput(f"thresholds must be DriftThresholds, got {type(thresholds).__name__}")
    if window.reference is not reference:
        raise InvalidInput(f"the window of feature {name!r} was built on another reference")
    if isinstance(reference, NumericReference) and isinstance(window, NumericWindow):
        return _judge_numeric(name, reference, window, thresholds)
    if isinstance(reference, CategoricalReference) and isinstance(window, CategoricalWindow):
        return _judge_categorical(name, reference, window, thresholds)
    raise InvalidInput(f"feature {name!r}: reference and window are of different kinds")


def type_mismatch(
    name: str, kind: Kind, problem: str, reference_rows: int, current_rows: int
) -> FeatureDrift:
    """The verdict for a column whose type differs between the sides: drifted, no statistics."""
    return FeatureDrift(
        name=name,
        kind=kind,
        drifted=True,
        reasons=("type mismatch",),
        reference_rows=reference_rows,
        current_rows=current_rows,
        null_rate=None,
        problem=problem,
    )


def _judge_numeric(
    name: str, reference: NumericReference, window: NumericWindow, thresholds: DriftThresholds
) -> FeatureDrift:
    rows = window.rows
    statistics = numeric_statistics(reference, window)
    reasons = _gate(
        statistics["ks_pvalue"],
        thresholds,
        {"psi": statistics["psi"] > thresholds.psi,
         "wasserstein": statistics["wasserstein"] > thresholds.wasserstein},
    )  # fmt: skip
    missing = _why_not(rows, window.moments.count, reference.moments.count)
    moments = window.moments
    return FeatureDrift(
        name=name,
        kind="numeric",
        drifted=not missing and bool(reasons),
        reasons=missing or reasons,
        reference_rows=reference.moments.count + reference.moments.nulls
        + reference.moments.nonfinite,
        current_rows=rows,
        null_rate=moments.nulls / rows if rows else None,
        **{key: _clean(statistics[key]) for key in NUMERIC_STATISTICS},
        integrity={
            "nulls": moments.nulls,
            "nonfinite": moments.nonfinite,
            "below_min": window.below_min,
            "above_max": window.above_max,
            "out_of_range_share": (window.below_min + window.above_max) / rows if rows else None,
            "mean": moments.total / moments.count if moments.count else None,
            "reference_mean": reference.mean,
        },
        histogram=tuple(numeric_histogram(reference, window)),
    )  # fmt: skip


def _judge_categorical(
    name: str,
    reference: CategoricalReference,
    window: CategoricalWindow,
    thresholds: DriftThresholds,
) -> FeatureDrift:
    rows = window.rows
    statistics = categorical_statistics(reference, window)
    reasons = _gate(
        statistics["chi2_pvalue"],
        thresholds,
        {"psi": statistics["psi"] > thresholds.psi,
         "js": statistics["js"] > thresholds.js,
         "unseen_share": statistics["unseen_share"] > thresholds.unseen_share},
    )  # fmt: skip
    values = rows - window.nulls
    reference_values = reference.rows - reference.nulls
    missing = _why_not(rows, values, reference_values)
    return FeatureDrift(
        name=name,
        kind="categorical",
        drifted=not missing and bool(reasons),
        reasons=missing or reasons,
        reference_rows=reference.rows,
        current_rows=rows,
        null_rate=window.nulls / rows if rows else None,
        **{key: _clean(statistics[key]) for key in CATEGORICAL_STATISTICS if key != "unseen"},
        unseen=tuple(statistics["unseen"]),
        integrity={
            "nulls": window.nulls,
            "unseen_rows": window.unseen_rows,
            "unseen_share": statistics["unseen_share"],
        },
        histogram=tuple(categorical_histogram(reference, window)),
    )


def _gate(pvalue: float, thresholds: DriftThresholds, crossed: dict[str, bool]) -> tuple[str, ...]:
    """The names of the effect sizes over their thresholds, if the p-value is significant."""
    if not pvalue < thresholds.p_value:
        return ()
    return tuple(name for name, over in crossed.items() if over)


def _why_not(rows: int, values: int, reference_values: int) -> tuple[str, ...]:
    if rows == 0:
        return ("no rows",)
    if values == 0:
        return ("no values",)
    if reference_values == 0:
        return ("no reference values",)
    return ()


def _clean(value: Any) -> Any:
    """NaN and infinities as None; numpy scalars as Python numbers; lists kept."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else None
