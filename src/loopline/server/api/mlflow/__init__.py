"""The MLflow tracking REST API subset, under /api/2.0/mlflow: a team switches its
existing `mlflow` logging code to loopline by changing MLFLOW_TRACKING_URI.

Experiments (create, get, get-by-name, search), runs (create, get, update, delete,
restore, search, log-metric, log-parameter, set-tag, log-batch), metrics/get-history,
registered models and model versions (get, search, get-by-alias), over loopline's own
runs and registry. Field names, defaults, limits, page tokens and error codes follow
MLflow's handlers (mlflow/server/handlers.py) and protos; `_entities` says how MLflow's
concepts map to loopline's, `_filters` how its search grammar is read.
"""

from __future__ import annotations

from fastapi import APIRouter

from loopline.server.api.mlflow import experiments, registry, runs

PREFIX = "/api/2.0/mlflow"

router = APIRouter(tags=["mlflow"])
router.include_router(experiments.router)
router.include_router(runs.router)
router.include_router(registry.router)
