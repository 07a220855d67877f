"""The checks of a report, and its status: drift, integrity, performance and, when two
versions answered side by side, canary (is the new one worse, with significance)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError
from loopline.monitoring._sections import VersionWatch

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.monitoring.policy import MonitorPolicy

CHECKS = ("drift", "integrity", "performance", "canary")
MIN_LABELLED_ROWS = 30  # fewer labels than this: realised metrics are shown, not judged
PRIMARY_METRIC = {"classification": ("accuracy", "roc_auc"), "regression": ("r2",)}


def primary(versions: dict[str, dict[str, Any]]) -> str:
    """The version the report's top level describes: the stable one (or arm A), else the
    one that answered most rows."""
    for role in ("stable", "arm A"):
        for name, body in versions.items():
            if body["role"] == role and body["rows"]:
                return name
    return max(versions, key=lambda name: versions[name]["rows"])


def judge(
    versions: dict[str, dict[str, Any]],
    watches: dict[str, VersionWatch],
    labelled: pa.Table | None,
    policy: MonitorPolicy,
) -> dict[str, Any]:
    """The report's verdict fields: status, failed, checks, comparison, versions, and the
    primary version's sections at the top level."""
    checks: dict[str, dict[str, Any]] = {}
    limit = policy.thresholds.drifted_features or 1
    drifted = {name: body["drifted"] for name, body in versions.items() if body["role"] != "shadow"}
    failing = {name: found for name, found in drifted.items() if len(found) >= limit}
    checks["drift"] = {
        "passed": not failing,
        "details": {name: found for name, found in drifted.items() if found},
        "limit": limit,
    }
    problems = {
        name: body["integrity"]["problems"]
        for name, body in versions.items()
        if body["integrity"]["problems"]
    }
    checks["integrity"] = {"passed": not problems, "details": problems}
    drops: dict[str, dict[str, Any]] = {}
    for name, body in versions.items():
        drop = _drop(body, policy)
        if drop is not None:
            drops[name] = drop
    checks["performance"] = {
        "passed": not any(drop["failed"] for drop in drops.values()),
        "details": drops,
    }
    comparison = _comparison(versions, watches, labelled)
    if comparison:
        worse = [c for c in comparison if c.get("better") == "a"]
        checks["canary"] = {"passed": not worse, "details": comparison}
    failed = [name for name in CHECKS if name in checks and not checks[name]["passed"]]
    main = primary(versions)
    top = versions[main]
    return {
        "status": "failed" if failed else "passed",
        "failed": failed,
        "checks": checks,
        "primary": main,
        "features": top["features"],
        "outputs": top["outputs"],
        "multivariate": top["multivariate"],
        "integrity": top["integrity"],
        "performance": top["performance"],
        "comparison": comparison,
        "versions": versions,
    }


def _drop(body: dict[str, Any], policy: MonitorPolicy) -> dict[str, Any] | None:
    """How far the version's performance fell below its stored evaluation, judged on
    realised metrics when enough labels arrived, else on the estimate."""
    performance = body["performance"]
    baseline = (performance.get("baseline") or {}).get("metrics") or {}
    if not baseline:
        return None
    allowed = policy.thresholds.max_metric_drop
    allowed = 0.05 if allowed is None else allowed
    realised = performance.get("realised") or {}
    source, metrics = "realised", realised.get("metrics") or {}
    if performance["labelled_rows"] < MIN_LABELLED_ROWS or not metrics:
        source, metrics = "estimated", (performance.get("estimated") or {}).get("metrics") or {}
    for metric in PRIMARY_METRIC[performance["task"]]:
        value, base = metrics.get(metric), baseline.get(metric)
        if isinstance(value, int | float) and isinstance(base, int | float):
            drop = float(base) - float(value)
            return {
                "metric": metric,
                "source": source,
                "value": value,
                "baseline": base,
                "drop": round(drop, 6),
                "allowed": allowed,
                "failed": drop > allowed,
            }
    return None


def _comparison(
    versions: dict[str, dict[str, Any]],
    watches: dict[str, VersionWatch],
    labelled: pa.Table | None,
) -> list[dict[str, Any]]:
    """Each challenger (canary, A/B arm, shadow) against the primary version, on the
    labelled rows each answered."""
    from loopline.monitoring._significance import compare_versions
    from loopline.monitoring._verdicts import _labelled_rows

    if labelled is None or len(versions) < 2:
        return []
    main = primary(versions)
    base = watches[main]
    base_rows = _labelled_rows(labelled, base)
    found = []
    for name, watch in watches.items():
        if name == main or versions[name]["role"] == "previous":
            continue
        rows = _labelled_rows(labelled, watch)
        entry: dict[str, Any] = {"a": main, "b": name, "role": versions[name]["role"]}
        if base_rows is None or rows is None:
            entry["note"] = "no labelled rows for one of the versions yet"
            found.append(entry)
            continue
        metric = "accuracy" if base.classes is not None else "absolute_error"
        try:
            result = compare_versions(
                _outcomes(base, base_rows, metric), _outcomes(watch, rows, metric), metric=metric
            )
        except LooplineError as exc:
            entry["note"] = str(exc)
        else:
            entry.update(result.to_dict())
        found.append(entry)
    return found


def _outcomes(watch: VersionWatch, rows: pa.Table, metric: str) -> np.ndarray:
    import numpy as np

    from loopline.monitoring._verdicts import outcome_arrays

    y_true, y_pred, _ = outcome_arrays(watch, rows)
    if metric == "accuracy":
        return np.array(
            [_same(t, p) for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True)],
            dtype=float,
        )
    errors: np.ndarray = np.abs(y_true.astype(float) - y_pred.astype(float))
    return errors


def _same(label: Any, prediction: Any) -> bool:
    numbers = (int, float)
    if isinstance(label, numbers) and isinstance(prediction, numbers):
        return float(label) == float(prediction)
    return str(label).lower() == str(prediction).lower()
