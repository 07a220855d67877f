"""Serving: registered models answering predictions over HTTP (loopline JSON, KServe V2, MLflow).

Sub-packages: `online` (the prediction server), `batch` (batch prediction), `export`
(Docker, Kubernetes, KServe). The prediction log and feedback live in
`loopline.predictions` (re-exported here). Names are imported on first use, so that
`from loopline.serving import deployments` does not load the server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_HOMES = {
    **dict.fromkeys(["RUNTIMES", "check_runtime", "plan_runtime"], "loopline.serving._runtime"),
    **dict.fromkeys(
        [
            "PredictionLog",
            "PredictionRecord",
            "read_feedback",
            "read_predictions",
            "read_rejected",
            "record_feedback",
        ],
        "loopline.predictions",
    ),
    "create_app": "loopline.serving.online.app",
    **dict.fromkeys(["BatchResult", "predict_batch"], "loopline.serving.batch"),
    **dict.fromkeys(
        [
            "Deployment",
            "DeploymentSpec",
            "Variant",
            "create_deployment",
            "deployment_history",
            "deployments_serving",
            "get_deployment",
            "list_deployments",
            "promote_deployment",
            "rollback_deployment",
            "update_deployment",
        ],
        "loopline.serving.deployments",
    ),
    **dict.fromkeys(["ExportResult", "export_deployment"], "loopline.serving.export"),
    **dict.fromkeys(
        ["Prediction", "ServedModel", "ServingPlan", "load_served", "plan_served"],
        "loopline.serving.runtime",
    ),
    **dict.fromkeys(
        ["plan_deployments", "serve", "serve_deployments"], "loopline.serving.online.server"
    ),
    **dict.fromkeys(
        ["ServerStatus", "server_status", "servers_by_deployment"], "loopline.serving.servers"
    ),
}

__all__ = [
    "RUNTIMES",
    "BatchResult",
    "Deployment",
    "DeploymentSpec",
    "ExportResult",
    "Prediction",
    "PredictionLog",
    "PredictionRecord",
    "ServedModel",
    "ServerStatus",
    "ServingPlan",
    "Variant",
    "check_runtime",
    "create_app",
    "create_deployment",
    "deployment_history",
    "deployments_serving",
    "export_deployment",
    "get_deployment",
    "list_deployments",
    "load_served",
    "plan_deployments",
    "plan_runtime",
    "plan_served",
    "predict_batch",
    "promote_deployment",
    "read_feedback",
    "read_predictions",
    "read_rejected",
    "record_feedback",
    "rollback_deployment",
    "serve",
    "serve_deployments",
    "server_status",
    "servers_by_deployment",
    "update_deployment",
]

if TYPE_CHECKING:
    from loopline.predictions import (
        PredictionLog,
        PredictionRecord,
        read_feedback,
        read_predictions,
        read_rejected,
        record_feedback,
    )
    from loopline.serving._runtime import RUNTIMES, check_runtime, plan_runtime
    from loopline.serving.batch import BatchResult, predict_batch
    from loopline.serving.deployments import (
        Deployment,
        DeploymentSpec,
        Variant,
        create_deployment,
        deployment_history,
        deployments_serving,
        get_deployment,
        list_deployments,
        promote_deployment,
        rollback_deployment,
        update_deployment,
    )
    from loopline.serving.export import ExportResult, export_deployment
    from loopline.serving.online.app import create_app
    from loopline.serving.online.server import plan_deployments, serve, serve_deployments
    from loopline.serving.runtime import (
        Prediction,
        ServedModel,
        ServingPlan,
        load_served,
        plan_served,
    )
    from loopline.serving.servers import ServerStatus, server_status, servers_by_deployment


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loopline.serving' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # the next lookup skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
