"""A/B and canary significance: is version b better than version a on a metric?

Each version's per-row outcomes are compared:

    accuracy         0/1 correctness (or bools); two-proportion z-test, higher is better
    absolute_error   per-row |error| >= 0; Welch's t-test, lower is better
    squared_error    per-row error² >= 0; Welch's t-test, lower is better

The difference is b - a. The p-value is two-sided: the z-test's standard error pools both
arms (the null hypothesis: one rate), its confidence interval does not (Wald); Welch's
test and interval use each arm's own variance and the Welch-Satterthwaite degrees of
freedom. `better` names the arm whose mean is better when p < alpha, else None.

`samples_needed` is the rows each arm needs to detect `minimum_effect` (default: the
observed difference; none needed when the result is already significant) with the asked
power at alpha, two-sided, the arms keeping their current ratio r = n_b / n_a (1 when an
arm is empty). Normal approximation, with z_a = Φ⁻¹(1 - alpha/2), z_b = Φ⁻¹(power) and δ
the effect:

    means:        n_a = (z_a + z_b)² (s_a² + s_b² / r) / δ²
    proportions:  n_a = (z_a √(p̄ q̄ (1 + 1/r)) + z_b √(p_a q_a + p_b q_b / r))² / δ²
                  with p_b = p_a ± δ (toward the observed difference), p̄ = (p_a + r p_b)/(1 + r)

and n_b = r n_a, both rounded up; `samples_remaining` subtracts the rows each arm has.
Degenerate inputs (an empty arm, an arm of one row, no variation in either arm) give
`p_value` None and a `reason`, never NaN. `to_dict()` floats are not rounded.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.monitoring._performance_inputs import checked_fraction, numbers_column

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

METRICS = {"accuracy": True, "absolute_error": False, "squared_error": False}
"""The metrics compare_versions knows -> whether a higher mean is better."""
Z_TEST = "two-proportion z-test"
WELCH = "Welch's t-test"


@dataclass(frozen=True)
class Significance:
    """Two versions' outcomes on one metric, their difference (b - a) and its significance.

    `mean_a`/`mean_b` are None for an empty arm; `p_value`, `statistic` and
    `confidence_interval` are None when the test is undefined, and `reason` says why.
    `samples_needed` and `samples_remaining` are {"a": rows, "b": rows} or None, with
    `samples_reason` saying why they are None.
    """

    metric: str
    test: str
    count_a: int
    count_b: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None
    confidence_interval: tuple[float, float] | None
    alpha: float
    statistic: float | None
    p_value: float | None
    better: str | None
    reason: str | None
    power: float
    minimum_effect: float | None
    samples_needed: dict[str, int] | None
    samples_remaining: dict[str, int] | None
    samples_reason: str | None

    @property
    def confidence(self) -> float:
        """The confidence level of the interval: 1 - alpha."""
        return 1.0 - self.alpha

    @property
    def significant(self) -> bool:
        """Whether p < alpha."""
        return self.p_value is not None and self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: plain str, int, float, bool, None, lists and dicts; no NaN."""
        interval = self.confidence_interval
        return {
            "metric": self.metric,
            "test": self.test,
            "count_a": self.count_a,
            "count_b": self.count_b,
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "difference": self.difference,
            "confidence_interval": None if interval is None else list(interval),
            "alpha": self.alpha,
            "confidence": self.confidence,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "significant": self.significant,
            "better": self.better,
            "reason": self.reason,
            "power": self.power,
            "minimum_effect": self.minimum_effect,
            "samples_needed": None if self.samples_needed is None else dict(self.samples_needed),
            "samples_remaining": None
            if self.samples_remaining is None
            else dict(self.samples_remaining),
            "samples_reason": self.samples_reason,
        }


@dataclass(frozen=True)
class _Arm:
    count: int
    mean: float | None
    variance: float | None  # sample variance (ddof 1); None under two rows


def compare_versions(
    a: Any,
    b: Any,
    *,
    metric: str,
    alpha: float = 0.05,
    power: float = 0.8,
    minimum_effect: float | None = None,
) -> Significance:
    """Compare version a's and version b's per-row outcomes on `metric` (module docstring).

    Returns a Significance. Raises InvalidInput for an unknown metric, outcomes that are
    not one-dimensional finite numbers (0/1 for accuracy, >= 0 for errors), alpha or power
    outside (0, 1), or a minimum_effect that is not a positive number (below 1 for
    accuracy).
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    alpha = checked_fraction(alpha, "alpha")
    power = checked_fraction(power, "power")
    effect = _checked_effect(minimum_effect, metric)
    first, second = _outcomes(a, metric, "a"), _outcomes(b, metric, "b")
    arm_a, arm_b = _arm(first), _arm(second)
    proportions = metric == "accuracy"
    tested = _test(arm_a, arm_b, alpha, proportions)
    statistic, p_value, interval, reason = tested
    difference = None
    if arm_a.mean is not None and arm_b.mean is not None:
        difference = arm_b.mean - arm_a.mean
    better = None
    if p_value is not None and p_value < alpha and difference:
        b_higher = difference > 0
        better = "b" if b_higher == METRICS[metric] else "a"
    sized = _samples(arm_a, arm_b, alpha, power, effect, difference, p_value, proportions)
    needed, samples_reason, used_effect = sized
    remaining = None
    if needed is not None:
        remaining = {
            "a": max(0, needed["a"] - arm_a.count),
            "b": max(0, needed["b"] - arm_b.count),
        }
    return Significance(
        metric=metric,
        test=Z_TEST if proportions else WELCH,
        count_a=arm_a.count,
        count_b=arm_b.count,
        mean_a=arm_a.mean,
        mean_b=arm_b.mean,
        difference=difference,
        confidence_interval=interval,
        alpha=alpha,
        statistic=statistic,
        p_value=p_value,
        better=better,
        reason=reason,
        power=power,
        minimum_effect=used_effect,
        samples_needed=needed,
        samples_remaining=remaining,
        samples_reason=samples_reason,
    )


def _outcomes(values: Any, metric: str, arm: str) -> Array:
    import numpy as np

    name = f"the outcomes of {arm}"
    outcomes = numbers_column(values, name)
    if metric == "accuracy":
        bad = (outcomes != 0) & (outcomes != 1)
        if bad.any():
            raise InvalidInput(
                f"{name} must be 0/1 correctness for accuracy; found {outcomes[bad][0]:g}"
            )
    elif bool(np.any(outcomes < 0)):
        raise InvalidInput(
            f"{name} must be {metric.replace('_', ' ')}s (>= 0); found {outcomes.min():g}"
        )
    return outcomes


def _arm(outcomes: Array) -> _Arm:
    count = len(outcomes)
    mean = float(outcomes.mean()) if count else None
    variance = float(outcomes.var(ddof=1)) if count >= 2 else None
    return _Arm(count, mean, variance)


_Tested = tuple[float | None, float | None, tuple[float, float] | None, str | None]


def _test(a: _Arm, b: _Arm, alpha: float, proportions: bool) -> _Tested:
    """(statistic, p-value, confidence interval, reason for None)."""
    from scipy import stats

    for name, arm in (("a", a), ("b", b)):
        if arm.count < 2:
            rows = "no rows" if arm.count == 0 else "1 row"
            return None, None, None, f"arm {name} has {rows}; a test needs at least 2 per arm"
    assert a.mean is not None and b.mean is not None
    assert a.variance is not None and b.variance is not None
    difference = b.mean - a.mean
    if proportions:
        pooled = (a.mean * a.count + b.mean * b.count) / (a.count + b.count)
        null_error = math.sqrt(pooled * (1 - pooled) * (1 / a.count + 1 / b.count))
        if null_error == 0:
            return None, None, None, f"every outcome in both arms is {pooled:g}: nothing varies"
        statistic = difference / null_error
        p_value = float(2 * stats.norm.sf(abs(statistic)))
        error = math.sqrt(a.mean * (1 - a.mean) / a.count + b.mean * (1 - b.mean) / b.count)
        critical = float(stats.norm.ppf(1 - alpha / 2))
    else:
        share_a, share_b = a.variance / a.count, b.variance / b.count
        error = math.sqrt(share_a + share_b)
        if error == 0:
            still = f"no variation within either arm (a is {a.mean:g} on every row, b {b.mean:g})"
            return None, None, None, still
        # Welch-Satterthwaite on the shares of the variance: the same value, but free of
        # underflow when the variances are tiny
        part_a, part_b = share_a / error**2, share_b / error**2
        freedom = 1.0 / (part_a**2 / (a.count - 1) + part_b**2 / (b.count - 1))
        statistic = difference / error
        p_value = float(2 * stats.t.sf(abs(statistic), freedom))
        critical = float(stats.t.ppf(1 - alpha / 2, freedom))
    interval = (difference - critical * error, difference + critical * error)
    return float(statistic), p_value, interval, None


def _samples(
    a: _Arm,
    b: _Arm,
    alpha: float,
    power: float,
    effect: float | None,
    difference: float | None,
    p_value: float | None,
    proportions: bool,
) -> tuple[dict[str, int] | None, str | None, float | None]:
    """(rows per arm, reason when None, the effect sized for) per the module docstring."""
    from scipy import stats

    if effect is None:
        if p_value is not None and p_value < alpha:
            return None, "already significant: no more rows needed", None
        if difference is None or difference == 0:
            return None, "no observed difference to size for; give minimum_effect", None
        effect = abs(difference)
    ratio = b.count / a.count if a.count and b.count else 1.0
    z_alpha, z_power = float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))
    direction = 1.0 if difference is None or difference >= 0 else -1.0
    if proportions:
        rate = a.mean if a.mean is not None else b.mean
        if rate is None:
            return None, "neither arm has rows to take the base rate from", effect
        sized = _proportion_rows(rate, effect, direction, ratio, z_alpha, z_power)
    else:
        sized = _mean_rows(a, b, effect, ratio, z_alpha, z_power)
    if isinstance(sized, str):
        return None, sized, effect
    return {"a": math.ceil(sized), "b": math.ceil(sized * ratio)}, None, effect


def _proportion_rows(
    rate: float, effect: float, direction: float, ratio: float, z_alpha: float, z_power: float
) -> float | str:
    other = rate + direction * effect
    if not 0.0 <= other <= 1.0:
        other = rate - direction * effect
    if not 0.0 <= other <= 1.0:
        return f"an effect of {effect:g} does not fit a base rate of {rate:g}"
    pooled = (rate + ratio * other) / (1 + ratio)
    null_part = z_alpha * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    alternative = z_power * math.sqrt(rate * (1 - rate) + other * (1 - other) / ratio)
    return float((null_part + alternative) ** 2 / effect**2)


def _mean_rows(
    a: _Arm, b: _Arm, effect: float, ratio: float, z_alpha: float, z_power: float
) -> float | str:
    variance_a = a.variance if a.variance is not None else b.variance
    variance_b = b.variance if b.variance is not None else a.variance
    if variance_a is None or variance_b is None:
        return "neither arm has 2 rows to estimate the variance from"
    if variance_a + variance_b == 0:
        return "no variation within either arm to size the test with"
    return float((z_alpha + z_power) ** 2 * (variance_a + variance_b / ratio) / effect**2)


def _checked_effect(value: Any, metric: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"minimum_effect must be a positive number, got {value!r}")
    effect = float(value)
    if not math.isfinite(effect) or effect <= 0:
        raise InvalidInput(f"minimum_effect must be a positive finite number, got {value!r}")
    if metric == "accuracy" and effect >= 1:
        raise InvalidInput(f"minimum_effect for accuracy must be below 1, got {value!r}")
    return effect
