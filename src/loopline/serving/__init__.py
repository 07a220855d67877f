"""Serving: registered models answering predictions over HTTP (loopline JSON, KServe V2, MLflow)."""

from loopline.serving._sink import PredictionRecord
from loopline.serving.app import create_app
from loopline.serving.batch import BatchResult, predict_batch
from loopline.serving.runtime import (
    Prediction,
    ServedModel,
    ServingPlan,
    load_served,
    plan_served,
)
from loopline.serving.server import plan_deployments, serve

__all__ = [
    "BatchResult",
    "Prediction",
    "PredictionRecord",
    "ServedModel",
    "ServingPlan",
    "create_app",
    "load_served",
    "plan_deployments",
    "plan_served",
    "predict_batch",
    "serve",
]
