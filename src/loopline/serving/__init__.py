"""Serving: registered models answering predictions over HTTP (loopline JSON, KServe V2, MLflow)."""

from loopline.serving._runtime import RUNTIMES, check_runtime, plan_runtime
from loopline.serving._sink import PredictionRecord
from loopline.serving.app import create_app
from loopline.serving.batch import BatchResult, predict_batch
from loopline.serving.deployments import (
    Deployment,
    DeploymentSpec,
    Variant,
    create_deployment,
    deployment_history,
    get_deployment,
    list_deployments,
    promote_deployment,
    rollback_deployment,
    update_deployment,
)
from loopline.serving.export import ExportResult, export_deployment
from loopline.serving.prediction_log import (
    PredictionLog,
    read_feedback,
    read_predictions,
    read_rejected,
    record_feedback,
)
from loopline.serving.runtime import (
    Prediction,
    ServedModel,
    ServingPlan,
    load_served,
    plan_served,
)
from loopline.serving.server import plan_deployments, serve, serve_deployments
from loopline.serving.servers import ServerStatus, server_status, servers_by_deployment

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
