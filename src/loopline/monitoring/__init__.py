"""Monitoring: drift statistics between a reference and a window, streamed and mergeable."""

from loopline.monitoring._categorical import CategoricalReference, CategoricalWindow
from loopline.monitoring._drift import DriftReport, drift
from loopline.monitoring._multivariate import PCAReference, PCAWindow
from loopline.monitoring._numeric import NumericReference, NumericWindow
from loopline.monitoring._verdict import DriftThresholds, FeatureDrift, judge

__all__ = [
    "CategoricalReference",
    "CategoricalWindow",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "NumericReference",
    "NumericWindow",
    "PCAReference",
    "PCAWindow",
    "drift",
    "judge",
]
