"""loopline: the whole MLOps loop in one package, every object versioned and linked.

    import loopline as ll
    with ll.start_run(experiment="churn", params={"C": 1.0}):
        ll.log_metric("auc", 0.91)

Names are imported on first use, so `import loopline` stays fast (no SQLAlchemy,
pandas or fsspec until a store is touched).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from loopline._version import __version__

__all__ = [
    "ActiveRun",
    "Client",
    "Experiment",
    "MetricPoint",
    "Run",
    "RunStatus",
    "__version__",
    "active_run",
    "autolog",
    "cards",
    "configure",
    "data",
    "delete_run",
    "deployments",
    "download_artifacts",
    "end_run",
    "errors",
    "evaluate",
    "evaluation",
    "flush",
    "get_metric_history",
    "get_run",
    "list_artifacts",
    "list_experiments",
    "log_artifact",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "models",
    "monitoring",
    "promotion",
    "registry",
    "restore_run",
    "search_runs",
    "serving",
    "set_tag",
    "set_tags",
    "start_run",
    "trace",
]

_STORE_NAMES = {"Experiment", "MetricPoint", "Run", "RunStatus"}
_MODULES = {
    "errors",
    "data",
    "models",
    "registry",
    "promotion",
    "evaluation",
    "cards",
    "serving",
    "monitoring",
}


def _home(name: str) -> str | None:
    """The module that defines a public name."""
    if name in _MODULES:
        return f"loopline.{name}"
    if name == "deployments":
        return "loopline.serving.deployments"
    if name == "evaluate":
        return "loopline.evaluation"
    if name in _STORE_NAMES:
        return "loopline.store"
    if name == "configure":
        return "loopline.project"
    if name == "Client":
        return "loopline.client"
    if name == "autolog":
        return "loopline.models.autolog"
    if name == "trace":
        return "loopline.monitoring.trace"
    return "loopline.tracking" if name in __all__ else None


if TYPE_CHECKING:
    from loopline import (
        cards,
        data,
        errors,
        evaluation,
        models,
        monitoring,
        promotion,
        registry,
        serving,
    )
    from loopline.client import Client
    from loopline.evaluation import evaluate
    from loopline.models.autolog import autolog
    from loopline.monitoring.trace import trace
    from loopline.serving import deployments
    from loopline.store import Experiment, MetricPoint, Run, RunStatus
    from loopline.tracking import (
        ActiveRun,
        active_run,
        configure,
        delete_run,
        download_artifacts,
        end_run,
        flush,
        get_metric_history,
        get_run,
        list_artifacts,
        list_experiments,
        log_artifact,
        log_dict,
        log_figure,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_table,
        log_text,
        restore_run,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )


def __getattr__(name: str) -> Any:
    module = _home(name)
    if module is None or name == "__version__":
        raise AttributeError(f"module 'loopline' has no attribute {name!r}")
    is_module = name in _MODULES or name == "deployments"
    value = import_module(module) if is_module else getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
