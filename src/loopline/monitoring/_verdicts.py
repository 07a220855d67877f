"""One version's section of a report, from what its watch accumulated: drift per input
and output, the multivariate figure, integrity, and performance (realised over the
labelled rows, estimated from the model's probabilities before labels arrive)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError
from loopline.monitoring._sections import ALL, VersionWatch, probability_matrix

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.monitoring.policy import MonitorPolicy
    from loopline.project import Stores

log = logging.getLogger(__name__)
MAX_SUITE_FAILURES = 20


def section(
    watch: VersionWatch, policy: MonitorPolicy, labelled: pa.Table | None, opened: Stores
) -> dict[str, Any]:
    """The report's section of one model version (JSON-safe)."""
    body: dict[str, Any] = {
        "version": watch.version.ref,
        "role": watch.role,
        "rows": watch.rows.get(ALL, 0),
        "reference": watch.reference.ref,
    }
    if watch.reference.note:
        body["reference_note"] = watch.reference.note
    features, outputs = _drift(watch, policy, ALL)
    body["features"] = features
    body["outputs"] = outputs
    body["drifted"] = [name for name, f in features.items() if f.get("drifted")]
    body["drifted_outputs"] = [name for name, f in outputs.items() if f.get("drifted")]
    body["multivariate"] = _multivariate(watch, ALL)
    body["integrity"] = _integrity(watch, policy, features, opened)
    mine = _labelled_rows(labelled, watch)
    body["performance"] = _performance(watch, mine, ALL, opened)
    body["segments"] = _segments(watch, policy, mine, opened)
    return body


def drift_thresholds(policy: MonitorPolicy, feature: str) -> Any:
    """The drift module's thresholds for `feature` under the policy (its defaults where
    the policy names none)."""
    from loopline.monitoring._verdict import DriftThresholds

    chosen = policy.thresholds.for_feature(feature)
    values = {
        key: getattr(chosen, key)
        for key in ("psi", "wasserstein", "js", "p_value", "unseen_share")
        if getattr(chosen, key, None) is not None
    }
    return DriftThresholds(**values)


def _drift(
    watch: VersionWatch, policy: MonitorPolicy, key: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    features: dict[str, Any] = {}
    if not watch.shadow:
        for name, monitor in watch.inputs.items():
            if key not in monitor.windows and key != ALL:
                continue
            found = monitor.verdict(key, drift_thresholds(policy, name)).to_dict()
            problems = monitor.type_problems.get(key, 0)
            if problems:
                found["type_problems"] = problems
            features[name] = found
    outputs = {
        name: monitor.verdict(key, drift_thresholds(policy, name)).to_dict()
        for name, monitor in watch.outputs.items()
        if key in monitor.windows or key == ALL
    }
    return features, outputs


def _multivariate(watch: VersionWatch, key: str) -> dict[str, Any] | None:
    window = watch.pca_windows.get(key)
    if window is None or watch.shadow or not window.rows:
        return None
    result: dict[str, Any] = dict(window.verdict())
    result["columns"] = len(watch.pca_columns)
    return result


def _integrity(
    watch: VersionWatch, policy: MonitorPolicy, features: dict[str, Any], opened: Stores
) -> dict[str, Any]:
    per_feature: dict[str, Any] = {}
    problems: list[str] = []
    for name, found in features.items():
        limits = policy.thresholds.for_feature(name)
        checks = found.get("integrity") or {}
        entry = {
            "null_rate": found.get("null_rate"),
            "out_of_range": checks.get("out_of_range_share"),
            "unseen_share": found.get("unseen_share"),
            "type_problems": found.get("type_problems", 0),
            "type_mismatch": found.get("problem"),
        }
        per_feature[name] = entry
        null_limit = getattr(limits, "null_rate", None)
        if null_limit is None:
            null_limit = 0.05
        range_limit = getattr(limits, "out_of_range", None)
        if range_limit is None:
            range_limit = 0.05
        if entry["null_rate"] is not None and entry["null_rate"] > null_limit:
            problems.append(f"{name}: null rate {entry['null_rate']:.3g} > {null_limit:g}")
        if entry["out_of_range"] is not None and entry["out_of_range"] > range_limit:
            problems.append(
                f"{name}: {entry['out_of_range']:.3g} of values outside the reference's range"
                f" > {range_limit:g}"
            )
        if entry["type_problems"]:
            problems.append(f"{name}: {entry['type_problems']} values of the wrong type")
        if entry["type_mismatch"]:
            problems.append(f"{name}: {entry['type_mismatch']}")
    suite = _suite(watch, opened)
    if suite is not None and not suite.get("success", True):
        problems.append(f"expectation suite {suite['suite']!r}: {suite['failed']} failed")
    return {"features": per_feature, "suite": suite, "problems": problems}


def _suite(watch: VersionWatch, opened: Stores) -> dict[str, Any] | None:
    """The reference version's newest stored expectation suite, run on a sample of the
    window; None when it has none."""
    if watch.shadow:
        return None
    try:
        version = opened.metadata.datasets.get_version(*_split_ref(watch.reference.ref))
        records = opened.metadata.datasets.list_validations(version.id)
    except LooplineError:
        return None
    if not records:
        return None
    from loopline.data.validation import ExpectationSuite, validate

    frame = watch.sample_frame()
    if frame is None or frame.empty:
        return None
    try:
        suite = ExpectationSuite.from_yaml(
            opened.artifacts.get_bytes(records[0].suite_hash).decode()
        )
        result = validate(frame, suite)
    except LooplineError as exc:
        return {"suite": records[0].suite_name, "error": str(exc), "success": False, "failed": 0}
    failures = list(result.to_dict().get("failures") or [])  # type: ignore[call-overload]
    return {
        "suite": records[0].suite_name,
        "rows": len(frame),
        "success": bool(result.success),
        "failed": len(failures),
        "failures": failures[:MAX_SUITE_FAILURES],
    }


def _split_ref(ref: str) -> tuple[str, int]:
    name, _, number = ref.rpartition("@")
    return name, int(number)


def _labelled_rows(labelled: pa.Table | None, watch: VersionWatch) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if labelled is None or labelled.num_rows == 0:
        return None
    column = "shadow_version" if watch.shadow else "model_version"
    if column not in labelled.column_names:
        return None
    mine = labelled.filter(
        pc.fill_null(pc.equal(labelled.column(column), pa.scalar(watch.version.ref)), False)
    )
    return mine if mine.num_rows else None


def _performance(
    watch: VersionWatch, labelled: pa.Table | None, key: str, opened: Stores
) -> dict[str, Any]:
    rows = watch.rows.get(key, 0)
    baseline = _baseline(watch, opened)
    body: dict[str, Any] = {
        "task": "classification" if watch.classes is not None else "regression",
        "labelled_rows": 0 if labelled is None else labelled.num_rows,
        "coverage": None
        if not rows
        else round((0 if labelled is None else labelled.num_rows) / rows, 6),
        "baseline": baseline,
        "realised": None,
        "estimated": None,
    }
    if labelled is not None:
        body["realised"] = _realised(watch, labelled, baseline)
    if key == ALL and watch.classes is not None:
        body["estimated"] = _estimated(watch)
    return body


def _baseline(watch: VersionWatch, opened: Stores) -> dict[str, Any] | None:
    records = opened.metadata.reviews.list_evaluations(watch.version.id)
    if not records:
        return None
    numbers = {
        k: v
        for k, v in records[0].metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {"evaluation": records[0].id, "data": records[0].data_ref, "metrics": numbers}


def outcome_arrays(
    watch: VersionWatch, labelled: pa.Table
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """y_true, y_pred and the probability matrix (or None) of labelled rows."""
    import numpy as np

    prediction = "shadow_prediction" if watch.shadow else "prediction"
    probabilities = "shadow_probabilities" if watch.shadow else "probabilities"
    y_true = np.asarray(labelled.column("label").to_numpy(zero_copy_only=False))
    y_pred = np.asarray(labelled.column(prediction).to_numpy(zero_copy_only=False))
    matrix = None
    if watch.classes is not None and probabilities in labelled.column_names:
        matrix = probability_matrix(labelled.column(probabilities), len(watch.classes))
        if matrix is not None and np.isnan(matrix).any():
            matrix = None
    return y_true, y_pred, matrix


def _realised(
    watch: VersionWatch, labelled: pa.Table, baseline: dict[str, Any] | None
) -> dict[str, Any] | None:
    from loopline.monitoring._performance import realised_performance

    task = "classification" if watch.classes is not None else "regression"
    y_true, y_pred, matrix = outcome_arrays(watch, labelled)
    try:
        result = realised_performance(
            task,
            y_true,
            y_pred,
            probabilities=matrix,
            classes=watch.classes,
            baseline=None if baseline is None else baseline["metrics"],
        )
    except LooplineError as exc:
        return {"error": str(exc)}
    return dict(result.to_dict())


def _estimated(watch: VersionWatch) -> dict[str, Any] | None:
    from loopline.monitoring._estimate import estimate_performance

    probabilities = watch.probabilities()
    if probabilities is None or len(probabilities) == 0 or watch.classes is None:
        return None
    reference = watch.reference
    calibration = None
    if reference.labels is not None and reference.probabilities is not None:
        calibration = (reference.labels, reference.probabilities)
    try:
        result = estimate_performance(probabilities, watch.classes, calibration=calibration)
    except LooplineError as exc:
        return {"error": str(exc)}
    body = dict(result.to_dict())
    body["rows"] = len(probabilities)
    return body


def _segments(
    watch: VersionWatch, policy: MonitorPolicy, labelled: pa.Table | None, opened: Stores
) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[str, Any] = {}
    for key in sorted(k for k in watch.rows if k != ALL):
        column, _, value = key.partition("=")
        features, outputs = _drift(watch, policy, key)
        mine = None
        name = f"input:{column}"
        if labelled is not None and name in labelled.column_names:
            values = pc.cast(labelled.column(name), pa.string())
            mine = labelled.filter(pc.fill_null(pc.equal(values, pa.scalar(value)), False))
            mine = mine if mine.num_rows else None
        found[key] = {
            "column": column,
            "value": value,
            "rows": watch.rows[key],
            "features": features,
            "outputs": outputs,
            "drifted": [n for n, f in features.items() if f.get("drifted")],
            "performance": _performance(watch, mine, key, opened),
        }
    return found
