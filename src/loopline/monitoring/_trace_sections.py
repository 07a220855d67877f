"""The sections of a trace, each a JSON-safe dict built from one area's records: the
revision in force, how the version was chosen, the version, its run, the run's dataset
versions with their validations, the version's promotion, and the feedback label."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, NotFound
from loopline.store import Direction, LinkKind

if TYPE_CHECKING:
    from loopline.project import Stores
    from loopline.store import ModelVersion
    from loopline.store.deployments import DeploymentRevision


def json_safe(value: Any) -> Any:
    """`value` with datetimes as ISO text, non-finite floats as None, tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def safe_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """json_safe for a mapping, typed as the dict it returns."""
    return {str(key): json_safe(item) for key, item in value.items()}


def prediction_section(row: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """The row as logged: inputs, output, probabilities, shadow, time, latency, endpoint."""
    shadow = None
    if row.get("shadow_version") is not None:
        shadow = {
            "version": row["shadow_version"],
            "prediction": row.get("shadow_prediction"),
            "probabilities": row.get("shadow_probabilities"),
            "error": row.get("shadow_error"),
        }
    return safe_dict(
        {
            "inputs": row.get("inputs"),
            "output": row.get("prediction"),
            "probabilities": row.get("probabilities"),
            "shadow": shadow,
            "time": row["time"],
            "latency_ms": row.get("latency_ms"),
            "endpoint": row.get("endpoint"),
            "model_version": row.get("model_version"),
            "runtime_version": row.get("runtime_version"),
            "dropped_fields": row.get("dropped_fields") or [],
            "rows_in_request": rows,
        }
    )


def revision_in_force(
    history: Sequence[DeploymentRevision], moment: datetime
) -> DeploymentRevision | None:
    """The newest revision created at or before `moment` (history is newest first)."""
    for revision in history:
        if revision.created_at <= moment:
            return revision
    return None


def revision_section(revision: DeploymentRevision, current: int) -> dict[str, Any]:
    return safe_dict(
        {
            "revision": revision.revision,
            "action": revision.action,
            "actor": revision.actor,
            "reason": revision.reason,
            "time": revision.created_at,
            "current_revision": current,
            "config": revision.config,
        }
    )


def routing_section(
    config: Mapping[str, Any] | None, model_version: str | None, shadow_version: str | None
) -> dict[str, Any]:
    """How the logged version was chosen under a revision's spec (the stored JSON of
    serving.deployments.DeploymentSpec): "model", "canary", "ab" arm, or "unknown" when
    the spec does not name it; and the shadow, if one ran."""
    spec = dict(config or {})
    model = _variant(spec.get("model"))
    canary = _variant(spec.get("canary"))
    shadow = _variant(spec.get("shadow"))
    arms = [_variant(arm) for arm in spec.get("ab") or []]
    weight = float(spec.get("weight") or 0.0)
    strategy = "ab" if arms else "canary" if canary else "single"
    found: dict[str, Any] = {
        "strategy": strategy + ("+shadow" if shadow else ""),
        "model_version": model_version,
        "chosen_by": "unknown",
        "share_percent": None,
        "arm": None,
        "key": spec.get("key"),
        "ref": None,
        "shadow": None,
    }
    if arms:
        versions = [arm["model"] if arm else None for arm in arms]
        if model_version in versions:
            at = versions.index(model_version)
            chosen = arms[at]
            found.update(chosen_by="ab", arm=at, ref=None if chosen is None else chosen["ref"])
            found["share_percent"] = round(100.0 / len(arms), 6)
    elif canary and model_version == canary["model"]:
        found.update(chosen_by="canary", share_percent=weight, ref=canary["ref"])
    elif model and model_version == model["model"]:
        found.update(chosen_by="model", share_percent=100.0 - weight if canary else 100.0)
        found["ref"] = model["ref"]
    if shadow is not None or shadow_version is not None:
        found["shadow"] = {
            "version": shadow_version,
            "configured": None if shadow is None else shadow["model"],
            "ref": None if shadow is None else shadow["ref"],
        }
    if found["chosen_by"] == "unknown" and config is None:
        found["chosen_by"] = None
    return found


def _variant(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or "model" not in value:
        return None
    return {"model": str(value["model"]), "ref": str(value.get("ref", value["model"]))}


def model_version(opened: Stores, ref: str | None) -> ModelVersion | None:
    """The registered version a logged "name/N" names, or None (unknown or deleted)."""
    if not ref or "/" not in ref:
        return None
    name, _, number = ref.rpartition("/")
    if not number.isdigit():
        return None
    try:
        return opened.metadata.models.get_version(name, int(number))
    except (NotFound, InvalidInput):
        return None


def model_section(opened: Stores, version: ModelVersion, runtime: str | None) -> dict[str, Any]:
    source = None
    if version.source_version_id is not None:
        try:
            source = opened.metadata.models.get_version_by_id(version.source_version_id).ref
        except NotFound:
            source = None
    return safe_dict(
        {
            "ref": version.ref,
            "id": version.id,
            "status": version.status.value,
            "aliases": opened.metadata.models.aliases_of(version.id),
            "flavor": version.flavor,
            "run_id": version.run_id,
            "source_version": source,
            "runtime_version": runtime,
            "description": version.description,
            "tags": version.tags,
            "created_by": version.created_by,
            "created_at": version.created_at,
        }
    )


def training_run_id(opened: Stores, version: ModelVersion) -> str | None:
    """The run that trained `version`, following an export back to its source."""
    seen: set[str] = set()
    current: ModelVersion | None = version
    while current is not None and current.id not in seen:
        if current.run_id is not None:
            return current.run_id
        seen.add(current.id)
        if current.source_version_id is None:
            return None
        try:
            current = opened.metadata.models.get_version_by_id(current.source_version_id)
        except NotFound:
            return None
    return None


def run_section(opened: Stores, run_id: str) -> dict[str, Any] | None:
    try:
        run = opened.metadata.runs.get_run(run_id)
    except (NotFound, InvalidInput):
        return None
    return safe_dict(
        {
            "id": run.id,
            "name": run.name,
            "experiment": run.experiment,
            "status": str(run.status.value if hasattr(run.status, "value") else run.status),
            "user": run.user,
            "source": run.source,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "commit": run.code.commit,
            "branch": run.code.branch,
            "dirty": run.code.dirty,
            "params": run.params,
            "metrics": run.metrics,
            "tags": run.tags,
        }
    )


def dataset_sections(opened: Stores, run_id: str) -> list[dict[str, Any]]:
    """The dataset versions the run read, each with its stored validation results."""
    try:
        links = opened.metadata.runs.list_links(run_id, Direction.INPUT, LinkKind.DATASET_VERSION)
    except (NotFound, InvalidInput):
        return []
    found = []
    for link in links:
        try:
            version = opened.metadata.datasets.get_version_by_id(link.ref)
        except NotFound:
            found.append({"ref": None, "id": link.ref, "name": link.name, "deleted": True})
            continue
        validations = [
            {
                "suite": check.suite_name,
                "success": check.success,
                "failed": check.failed,
                "time": check.created_at,
                "result_hash": check.result_hash,
            }
            for check in opened.metadata.datasets.list_validations(version.id)
        ]
        found.append(
            safe_dict(
                {
                    "ref": version.ref,
                    "id": version.id,
                    "name": link.name,
                    "message": version.message,
                    "author": version.author,
                    "created_at": version.created_at,
                    "rows": version.row_count,
                    "files": version.file_count,
                    "source": version.source,
                    "validations": validations,
                }
            )
        )
    return found


def promotion_section(opened: Stores, version: ModelVersion) -> dict[str, Any]:
    """The version's gate checks, approvals, evaluations and registry events, oldest first."""
    reviews = opened.metadata.reviews
    gates = [
        {
            "passed": check.passed,
            "results": check.results,
            "policy": check.policy,
            "actor": check.created_by,
            "time": check.created_at,
        }
        for check in reviews.list_gate_checks(version.id)
    ]
    approvals = [
        {"stage": a.stage, "actor": a.actor, "reason": a.reason, "time": a.created_at}
        for a in reviews.list_approvals(version.id)
    ]
    evaluations = [
        {"data": e.data_ref, "target": e.target, "metrics": e.metrics, "time": e.created_at}
        for e in reviews.list_evaluations(version.id)
    ]
    events = [
        {
            "action": e.action,
            "actor": e.actor,
            "time": e.time,
            "reason": e.reason,
            "after": e.after,
        }
        for e in opened.metadata.audit.list_events(object_id=version.ref, limit=1000)
    ]
    return safe_dict(
        {
            "gate_checks": sorted(gates, key=lambda g: g["time"]),
            "approvals": sorted(approvals, key=lambda a: a["time"]),
            "evaluations": sorted(evaluations, key=lambda e: e["time"]),
            "events": events[::-1],
        }
    )


def feedback_section(opened: Stores, deployment: str, request_id: str, row: int) -> Any:
    """The newest label of the row, or None when none arrived."""
    for label in opened.metadata.predictions.feedback_for_request(deployment, request_id):
        if label.row == row:
            return json_safe({"label": json.loads(label.label_json), "time": label.time})
    return None
