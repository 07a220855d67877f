"""The latest stored monitoring report's scores on /metrics, so Prometheus alert rules and
Grafana read drift and performance with no exporter of their own:

    loopline_monitor_drift{deployment, model_version, feature, statistic}
        psi, ks, wasserstein, js, chi2 of each input and output, and drifted (0/1)
    loopline_monitor_metric{deployment, model_version, metric, source}
        realised (labelled rows) or estimated (before labels) performance
    loopline_monitor_label_coverage{deployment, model_version}
    loopline_monitor_report_failed{deployment}      1 when the latest report failed a check
    loopline_monitor_report_timestamp_seconds{deployment}

The scores come from the report index in the metadata store (no blob is read), at most
once every `ttl` seconds per process; a store that cannot be read leaves the last scores.
Label values are names from the stored reports of the deployments this server serves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from loopline.project import Stores

log = logging.getLogger(__name__)
DEFAULT_TTL_SECONDS = 30.0


class MonitorScores:
    """A Prometheus collector of the newest report's scores per served deployment."""

    def __init__(self, stores: Stores, names: Sequence[str], *, ttl: float = DEFAULT_TTL_SECONDS):
        self._stores = stores
        self._names = list(names)
        self._ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._latest: dict[str, Any] = {}

    def describe(self) -> list[Metric]:
        return []  # collected on demand: nothing to check at registration

    def _reports(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._read_at < self._ttl:
                return self._latest
            latest = dict(self._latest)
            try:
                for name in self._names:
                    found = self._stores.metadata.monitoring.list_reports(name, limit=1)
                    if found:
                        latest[name] = found[0]
            except LooplineError as exc:
                log.warning("monitoring scores not refreshed: %s", exc)
            self._latest, self._read_at = latest, time.monotonic()
            return latest

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        drift = GaugeMetricFamily(
            "loopline_monitor_drift",
            "Drift statistics of the latest monitoring report, per feature and statistic.",
            labels=["deployment", "model_version", "feature", "statistic"],
        )
        metric = GaugeMetricFamily(
            "loopline_monitor_metric",
            "Performance in the latest monitoring report: realised or estimated.",
            labels=["deployment", "model_version", "metric", "source"],
        )
        coverage = GaugeMetricFamily(
            "loopline_monitor_label_coverage",
            "Share of the window's rows with a feedback label.",
            labels=["deployment", "model_version"],
        )
        failed = GaugeMetricFamily(
            "loopline_monitor_report_failed",
            "1 when the latest monitoring report failed a check, else 0.",
            labels=["deployment"],
        )
        stamp = GaugeMetricFamily(
            "loopline_monitor_report_timestamp_seconds",
            "When the latest monitoring report's window ended (Unix time).",
            labels=["deployment"],
        )
        for deployment, report in sorted(self._reports().items()):
            failed.add_metric([deployment], 1.0 if report.status == "failed" else 0.0)
            stamp.add_metric([deployment], report.until.timestamp())
            for version, scores in sorted(report.scores.items()):
                for part in ("features", "outputs"):
                    for feature, stats in sorted((scores.get(part) or {}).items()):
                        for statistic, value in sorted(stats.items()):
                            number = _number(value)
                            if number is not None:
                                drift.add_metric([deployment, version, feature, statistic], number)
                for source, values in sorted((scores.get("metrics") or {}).items()):
                    for name, value in sorted(values.items()):
                        number = _number(value)
                        if number is not None:
                            metric.add_metric([deployment, version, name, source], number)
                share = _number(scores.get("coverage"))
                if share is not None:
                    coverage.add_metric([deployment, version], share)
        yield from (drift, metric, coverage, failed, stamp)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None
