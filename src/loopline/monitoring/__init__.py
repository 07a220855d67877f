"""Monitoring: drift, integrity and performance of a deployment's predictions.

    report = ll.monitoring.run("credit", since=datetime.now(UTC) - timedelta(hours=1))
    report.status, report.drifted, report.to_dict()["performance"]
    ll.monitoring.drift("credit@1", "credit@2").drifted   # any two tables

`run` streams a window of the prediction log (DuckDB over its Parquet files) against a
reference (by default the served version's training data, found through lineage) and
stores the report; `drift` compares any two tables with the same statistics. The
statistics are streamed and mergeable (`NumericWindow`, `CategoricalWindow`,
`PCAWindow`): a window is never held whole.
"""

from loopline.monitoring._categorical import CategoricalReference, CategoricalWindow
from loopline.monitoring._drift import DriftReport, drift
from loopline.monitoring._multivariate import PCAReference, PCAWindow
from loopline.monitoring._numeric import NumericReference, NumericWindow
from loopline.monitoring._run import run
from loopline.monitoring._verdict import DriftThresholds, FeatureDrift, judge
from loopline.monitoring.report import MonitorReport, list_reports, load_report

__all__ = [
    "CategoricalReference",
    "CategoricalWindow",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "MonitorReport",
    "NumericReference",
    "NumericWindow",
    "PCAReference",
    "PCAWindow",
    "drift",
    "judge",
    "list_reports",
    "load_report",
    "run",
]
