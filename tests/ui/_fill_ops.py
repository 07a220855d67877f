"""The operations pages' data in a UI test project, written through the stores (no model,
no server, no watcher): what the deployments, monitoring and audit pages show.

- deployment "churn": revision 1 serves churn/1 (by ana), revision 2 adds churn/2 as a
  20 % canary (by ben, with markup as its reason); "fraud": one revision, no traffic;
- churn's prediction log: 300 requests of 1-3 rows over the last five hours (every
  fifth answered by the canary, a few with a failed shadow), written by the real
  PredictionLog (Parquet files, index, artifact store); feedback for every other request;
- three monitoring reports of churn (x2 drifts more and more), one with an HTML page
  that holds a script (it must only ever run sandboxed); an open drift alert whose
  summary is markup, and a resolved one;
- a retrain loop's chain up to its running canary (started, dataset, trained, gates,
  canary): the canary of churn's revision 2;
- audit events by two users (ana, ben), one whose user name is markup, and 48 by "ci"
  (63 events in all: two pages of the audit table).

`ops_project` (tests/ui/conftest.py) opens a project of its own and fills it once per
test module: ~1 s, most of it the prediction log's Parquet files and their sketches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

XSS_REASON = "<script>alert('reason')</script>"
XSS_USER = "<img src=x onerror=alert('user')>"
XSS_ALERT = "churn: drift check failed (<svg onload=alert('alert')>)"
REPORT_SCRIPT = "<script>document.title = 'ran'; parent.document.title = 'escaped'</script>"
LOOP_ID = "1" * 32
RUN_ID = "2" * 32
REQUESTS = 300
FEATURES = ("x1", "x2", "region")


@dataclass(frozen=True)
class OpsData:
    stores: Any
    reports: list[str]  # report ids, oldest first
    html_report: str  # the report whose stored page holds a script
    open_alert: str
    audit_events: int  # how many events the audit log holds after filling
    rows: int  # logged rows
    labelled: int  # logged rows with feedback


def fill_ops(opened: Any) -> OpsData:
    """The data of the module docstring, in `opened` (a project's stores)."""
    now = datetime.now(UTC).replace(microsecond=0)
    deployments = opened.metadata.deployments
    deployments.create("churn", _config("churn/1"), actor="ana", reason="launch")
    deployments.update(
        "churn",
        _config("churn/1", canary="churn/2", weight=20.0),
        action="update",
        actor="ben",
        reason=XSS_REASON,
    )
    deployments.create("fraud", _config("fraud/3"), actor="ben", reason=None)
    rows, labels = _log(opened, now)
    opened.metadata.predictions.add_feedback("churn", labels)
    reports = [_report(opened, now - timedelta(hours=3 - i), i) for i in range(3)]
    html_report = reports[-1]
    monitoring = opened.metadata.monitoring
    opened_alert, _ = monitoring.open_alert(
        "churn", "drift", summary=XSS_ALERT, report_id=reports[-1]
    )
    monitoring.open_alert("churn", "integrity", summary="churn: integrity failed", report_id=None)
    monitoring.resolve_alert("churn", "integrity")
    _loop(opened)
    audit = opened.metadata.audit
    for index in range(6):
        audit.record(
            actor=("ana", "ben")[index % 2],
            action="model_version.approve" if index % 3 == 0 else "alias.set",
            object_type="model_version",
            object_id=f"churn/{index % 3 + 1}",
            after={"n": index},
            reason=f"event {index}",
        )
    audit.record(
        actor=XSS_USER, action="alias.set", object_type="model", object_id="churn@champion"
    )
    for index in range(48):
        audit.record(actor="ci", action="token.use", object_type="token", object_id=f"t{index}")
    events = len(audit.list_events(limit=10_000))
    return OpsData(opened, reports, html_report, opened_alert.id, events, rows, len(labels))


def open_ops_project(root: Path) -> Iterator[OpsData]:
    """A new project at `root`, filled (see the module docstring); closed after."""
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings

    init_project(root)
    with pytest.MonkeyPatch.context() as env:  # no LOOPLINE_SERVER or the like from a shell
        for name in list(os.environ):
            if name.startswith("LOOPLINE_") and name != "LOOPLINE_TEST_POSTGRES_URL":
                env.delenv(name)
        opened = open_stores(project_settings(root))
    try:
        yield fill_ops(opened)
    finally:
        opened.close()


def _config(model: str, *, canary: str | None = None, weight: float = 0.0) -> dict[str, Any]:
    def variant(ref: str | None) -> dict[str, str] | None:
        return None if ref is None else {"model": ref, "ref": ref}

    return {
        "model": variant(model),
        "canary": variant(canary),
        "weight": weight,
        "shadow": None,
        "ab": [],
        "key": None,
        "prefer_onnx": True,
        "strict_inputs": False,
        "runtime": "auto",
    }


def _log(opened: Any, now: datetime) -> tuple[int, list[tuple[str, int, str]]]:
    """REQUESTS logged requests over the last five hours; (rows logged, feedback items)."""
    import numpy as np

    from loopline.predictions import Block, PredictionLog, PredictionRecord

    start = now - timedelta(hours=5)
    step = timedelta(hours=5) / REQUESTS
    rows, labels = 0, []
    with PredictionLog(opened, flush_seconds=60) as log:
        for index in range(REQUESTS):
            n = index % 3 + 1
            matrix = np.arange(n * 2, dtype=float).reshape(n, 2) + index / 100
            canary = index % 5 == 0
            shadow_failed = index % 50 == 7
            log(
                PredictionRecord(
                    request_id=f"q{index:05d}",
                    time=start + step * index,
                    deployment="churn",
                    model_version="churn/2" if canary else "churn/1",
                    runtime_version="native",
                    endpoint="predict",
                    predictions=np.arange(n) % 2,
                    probabilities=None,
                    latency_ms=2.0 + index % 10 + (30.0 if index % 25 == 0 else 0.0),
                    block=Block(("x1", "x2"), n, matrix),
                    shadow_version="churn/3" if shadow_failed else None,
                    shadow_error="RuntimeError: boom" if shadow_failed else None,
                )
            )
            rows += n
            if index % 2 == 0:
                labels += [(f"q{index:05d}", row, "1") for row in range(n)]
    return rows, labels


def _report(opened: Any, until: datetime, index: int) -> str:
    """A stored report of churn's window ending at `until` (x2 drifts more each time)."""
    from loopline.store.records import new_id

    report_id = new_id()
    psi = {"x1": 0.02 + index * 0.01, "x2": 0.05 + index * 0.15, "region": 0.01}
    features = {name: {"psi": value, "drifted": value > 0.1} for name, value in sorted(psi.items())}
    document = {"id": report_id, "deployment": "churn", "status": "failed", "features": features}
    page = f"<!doctype html><title>report {index}</title><h1>Report {index}</h1>{REPORT_SCRIPT}"
    drifted = [name for name, stats in features.items() if stats["drifted"]]
    opened.metadata.monitoring.add_report(
        "churn",
        since=until - timedelta(hours=1),
        until=until,
        rows=100,
        status="failed" if drifted else "passed",
        failed=["drift"] if drifted else [],
        reference="churn-train@1",
        report_hash=opened.artifacts.put_bytes(json.dumps(document).encode()).hash,
        html_hash=opened.artifacts.put_bytes(page.encode()).hash,
        scores={
            "churn/1": {"role": "stable", "rows": 80, "features": features, "outputs": {}},
            "churn/2": {
                "role": "canary",
                "rows": 20,
                "features": {k: {**v, "psi": v["psi"] / 2} for k, v in features.items()},
                "outputs": {},
            },
        },
        created_by="loopline-monitor",
        report_id=report_id,
    )
    return report_id


def _loop(opened: Any) -> None:
    """The audit events of one retrain loop of churn, start to promotion."""
    steps = [
        ("loop.started", {"trigger": {"by": "alert", "failed": ["drift"]}}, None),
        (
            "loop.dataset",
            {"training": "churn-train@2", "holdout": "churn-holdout@1", "production_rows": 150},
            None,
        ),
        (
            "loop.trained",
            {"run": RUN_ID, "candidate": "churn/2", "data": "churn-train@2"},
            "churn/2 trained on churn-train@2",
        ),
        ("loop.gates", {"candidate": "churn/2", "passed": True}, "gates passed"),
        (
            "loop.canary",
            {"candidate": "churn/2", "champion": "churn/1", "weight": 20.0},
            "churn/2 answers 20% of requests",
        ),
    ]
    for action, detail, reason in steps:
        opened.metadata.audit.record(
            actor="loopline-monitor",
            action=action,
            object_type="loop",
            object_id=LOOP_ID,
            after={"deployment": "churn", **detail},
            reason=reason,
        )
