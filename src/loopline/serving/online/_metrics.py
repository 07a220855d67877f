"""Prometheus metrics of one prediction app, in its own CollectorRegistry.

    loopline_serving_requests_total{deployment, model_version, endpoint, code}
    loopline_serving_request_duration_seconds{deployment, model_version}   histogram
    loopline_serving_errors_total{deployment, type}
    loopline_serving_batch_requests{deployment}     requests per predict call (histogram)
    loopline_serving_batch_rows{deployment}         rows per predict call (histogram)
    loopline_serving_model_ready{deployment, model_version, runtime, runtime_version}
    loopline_serving_shadow_requests_total{deployment, model_version, outcome}
    loopline_serving_deployment_revision{deployment}  the stored revision being served
    loopline_serving_sink_dropped_total              records the sink could not keep up with

and, for stored deployments, the latest monitoring report's scores (loopline_monitor_*,
see _monitor_metrics).

Labels hold only names the server knows (a request for an unknown deployment counts
under deployment=""), so a client cannot grow the label sets.

With several worker processes, `serve` sets PROMETHEUS_MULTIPROC_DIR before the workers
start: every worker then writes its values to memory-mapped files there, and a scrape of
any worker reads all of them (prometheus_client's multiprocess mode), so counters and
histograms are the sums over the workers, `model_ready` the highest value among live
workers and `deployment_revision` the lowest (the revision every worker has reached).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.serving.runtime import ServedModel

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServingMetrics:
    """The app's counters and histograms, with label children cached per label set."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        prefix = "loopline_serving_"
        self._requests = Counter(
            prefix + "requests",
            "Prediction requests by deployment, answering model version, endpoint, status code.",
            ["deployment", "model_version", "endpoint", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            prefix + "request_duration_seconds",
            "Time from a prediction request's arrival to its response.",
            ["deployment", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            prefix + "errors",
            "Requests answered with an error, by error type.",
            ["deployment", "type"],
            registry=self.registry,
        )
        self._batch_requests = Histogram(
            prefix + "batch_requests",
            "Requests merged into one predict call.",
            ["deployment"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._batch_rows = Histogram(
            prefix + "batch_rows",
            "Rows in one predict call.",
            ["deployment"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._ready = Gauge(
            prefix + "model_ready",
            "1 when the model is loaded and warmed up, with the runtime that serves it.",
            ["deployment", "model_version", "runtime", "runtime_version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._shadow = Counter(
            prefix + "shadow_requests",
            "Requests mirrored to a shadow model, by outcome (ok or the error type).",
            ["deployment", "model_version", "outcome"],
            registry=self.registry,
        )
        self._revision = Gauge(
            prefix + "deployment_revision",
            "The stored deployment revision each deployment serves.",
            ["deployment"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.sink_dropped = Counter(
            prefix + "sink_dropped",
            "Prediction records dropped because the sink fell behind.",
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._collectors: list[Any] = []  # read on each scrape (see add_collector)

    def add_collector(self, collector: Any) -> None:
        """A collector whose values come from elsewhere (the store), not from this
        process's counters: scraped from every worker alike."""
        self._collectors.append(collector)
        if not self.multiprocess:
            self.registry.register(collector)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(
        self, deployment: str, version: str, endpoint: str, code: int, seconds: float
    ) -> None:
        """Count one prediction request; time it when a model answered."""
        self._child(self._requests, deployment, version, endpoint, str(code)).inc()
        if code < 400:
            self._child(self._latency, deployment, version).observe(seconds)

    def error(self, deployment: str, kind: str) -> None:
        """Count one error response by its type (InvalidField, PayloadTooLarge, ...)."""
        self._child(self._errors, deployment, kind).inc()

    def batch(self, deployment: str, requests: int, rows: int) -> None:
        """Record the size of one predict call."""
        self._child(self._batch_requests, deployment).observe(requests)
        self._child(self._batch_rows, deployment).observe(rows)

    def model_ready(self, deployment: str, model: ServedModel) -> None:
        """Publish that a deployment's model is ready, and which runtime serves it."""
        self._ready.labels(
            deployment, model.version_ref, model.runtime, model.runtime_version_ref
        ).set(1 if model.ready else 0)

    def model_gone(self, deployment: str, model: ServedModel) -> None:
        """A version no longer served by the deployment (after a swap)."""
        labels = (deployment, model.version_ref, model.runtime, model.runtime_version_ref)
        if self.multiprocess:  # its file keeps the last value: make that 0
            self._ready.labels(*labels).set(0)
            return
        with contextlib.suppress(KeyError):
            self._ready.remove(*labels)

    def shadow(self, deployment: str, version: str, outcome: str) -> None:
        """Count one shadow prediction: "ok" or the error's type."""
        self._child(self._shadow, deployment, version, outcome).inc()

    def revision(self, deployment: str, revision: int) -> None:
        self._revision.labels(deployment).set(revision)

    def render(self) -> bytes:
        """The exposition text of every metric."""
        from prometheus_client import CollectorRegistry, generate_latest

        if not self.multiprocess:
            return bytes(generate_latest(self.registry))
        from prometheus_client.multiprocess import MultiProcessCollector

        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            every_worker.register(collector)
        return bytes(generate_latest(every_worker))
