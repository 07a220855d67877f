"""loopline's records in MLflow's JSON shapes (service.proto, model_registry.proto).

How the concepts map (the rest of MLflow's `mlflow.*` tags are kept as plain tags):
- run name, user and parent are loopline run attributes; MLflow's `mlflow.runName`,
  `mlflow.user` and `mlflow.parentRunId` tags are written from them on the way out,
  and read into them on the way in (`split_system_tags`);
- status RUNNING / FINISHED / FAILED / KILLED is the run's status; a soft-deleted run's
  lifecycle_stage is "deleted";
- times are epoch milliseconds; a run's metrics carry their latest values;
- artifact_uri is `loopline:/runs/<id>/artifacts`, a scheme the mlflow client has no
  artifact repository for, so an artifact call fails loudly rather than writing files
  somewhere else;
- a model version's status (candidate, staging, production, archived) is MLflow's
  current_stage (None, Staging, Production, Archived); every version is READY.
"""

from __future__ import annotations

from typing import Any

from loopline.server.api.mlflow._protocol import double
from loopline.store import Experiment, MetricPoint, ModelVersion, RegisteredModel, Run
from loopline.store.records import datetime_to_ms

ARTIFACT_SCHEME = "loopline"
DEFAULT_EXPERIMENT_ID = "0"  # the id MLflow's client uses when no experiment is set
DEFAULT_EXPERIMENT = "default"  # the experiment loopline's start_run uses by default

_STAGES = {"candidate": "None", "staging": "Staging", "production": "Production"}


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    created = datetime_to_ms(experiment.created_at)
    tags = []
    if experiment.description:
        tags.append({"key": "mlflow.note.content", "value": experiment.description})
    return {
        "experiment_id": experiment.id,
        "name": experiment.name,
        "artifact_location": f"{ARTIFACT_SCHEME}:/experiments/{experiment.id}",
        "lifecycle_stage": "deleted" if experiment.deleted else "active",
        "last_update_time": created,
        "creation_time": created,
        "tags": tags,
    }


def run_info_json(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.user,
        "status": run.status.value,
        "start_time": datetime_to_ms(run.start_time),
        "end_time": None if run.end_time is None else datetime_to_ms(run.end_time),
        "artifact_uri": f"{ARTIFACT_SCHEME}:/runs/{run.id}/artifacts",
        "lifecycle_stage": "deleted" if run.deleted else "active",
    }


def run_tags(run: Run) -> dict[str, str]:
    """The run's tags as MLflow shows them: its own, plus the system tags from attributes."""
    shown = dict(run.tags)
    shown["mlflow.runName"] = run.name
    if run.user:
        shown["mlflow.user"] = run.user
    if run.parent_id:
        shown["mlflow.parentRunId"] = run.parent_id
    return shown


def run_json(run: Run) -> dict[str, Any]:
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [{"key": k, "value": double(v)} for k, v in sorted(run.metrics.items())],
            "params": [{"key": k, "value": v} for k, v in sorted(run.params.items())],
            "tags": [{"key": k, "value": v} for k, v in sorted(run_tags(run).items())],
        },
        "inputs": {},
    }


def metric_json(point: MetricPoint, run_id: str) -> dict[str, Any]:
    return {
        "key": point.key,
        "value": double(point.value),
        "timestamp": datetime_to_ms(point.timestamp),
        "step": point.step,
        "run_id": run_id,
    }


def version_json(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    created = datetime_to_ms(version.created_at)
    return {
        "name": version.model,
        "version": str(version.version),
        "creation_timestamp": created,
        "last_updated_timestamp": created,
        "user_id": version.created_by,
        "current_stage": _STAGES.get(version.status.value, "Archived"),
        "description": version.description or "",
        "source": f"models:/{version.model}/{version.version}",
        "run_id": version.run_id or "",
        "status": "READY",
        "tags": [{"key": k, "value": v} for k, v in sorted(version.tags.items())],
        "aliases": aliases,
    }


def model_json(model: RegisteredModel, latest: ModelVersion | None) -> dict[str, Any]:
    latest_aliases = [] if latest is None else aliases_of(model, latest.version)
    return {
        "name": model.name,
        "creation_timestamp": datetime_to_ms(model.created_at),
        "last_updated_timestamp": datetime_to_ms(model.updated_at),
        "description": model.description or "",
        "latest_versions": [] if latest is None else [version_json(latest, latest_aliases)],
        "tags": [{"key": k, "value": v} for k, v in sorted(model.tags.items())],
        "aliases": [
            {"alias": alias, "version": str(number)}
            for alias, number in sorted(model.aliases.items())
        ],
    }


def aliases_of(model: RegisteredModel, number: int) -> list[str]:
    """The aliases of `model` that point at version `number`."""
    return sorted(alias for alias, target in model.aliases.items() if target == number)
