"""Experiment tracking: runs, params, metrics, tags, artifacts, search."""

from loopline.project import Stores, configure, stores
from loopline.tracking.artifacts import download_artifacts, list_artifacts, log_artifact_for_run
from loopline.tracking.runs import (
    ActiveRun,
    active_run,
    end_run,
    flush,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_tag,
    set_tags,
    start_run,
)
from loopline.tracking.search import (
    delete_run,
    describe_link,
    get_metric_history,
    get_run,
    lineage,
    list_experiments,
    restore_run,
    runs_frame,
    search_runs,
)

__all__ = [
    "ActiveRun",
    "Stores",
    "active_run",
    "configure",
    "delete_run",
    "describe_link",
    "download_artifacts",
    "end_run",
    "flush",
    "get_metric_history",
    "get_run",
    "lineage",
    "list_artifacts",
    "list_experiments",
    "log_artifact",
    "log_artifact_for_run",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "restore_run",
    "runs_frame",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "stores",
]
