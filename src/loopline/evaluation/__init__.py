"""Model evaluation: metrics, slices, fairness, calibration, robustness, latency, reports."""

from loopline.evaluation.api import (
    Evaluation,
    config_hash,
    evaluate,
    latest_evaluation,
    list_evaluations,
)

__all__ = ["Evaluation", "config_hash", "evaluate", "latest_evaluation", "list_evaluations"]
