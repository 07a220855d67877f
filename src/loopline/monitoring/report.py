"""`MonitorReport`: one report as a JSON document, and how reports are stored and found.

A stored report is two blobs in the artifact store (the JSON, and its self-contained HTML
page) and one row in the metadata store's index (`monitor_reports`), with the headline
scores that /metrics and the time series of later reports read without fetching blobs.

The document's top level (`to_dict()`):
    id, deployment, window {since, until}, rows, method ("exact"; or "sketch", with a
    `sketch` entry: files merged, files read exactly, notes, what was left out; see
    _sketch_run), method_note (why exact, when over exact_max_rows), status (passed, failed,
    skipped), failed (the failed checks), checks {drift, integrity, performance, canary},
    primary (the version described at the top level), features {NAME: {drifted, psi,
    ks, ks_pvalue, wasserstein | chi2, chi2_pvalue, js, unseen, ...}}, outputs,
    multivariate, integrity, performance, comparison, versions {VERSION: {role, rows,
    reference, features, outputs, drifted, multivariate, integrity, performance,
    segments}}, reference, revision, strategy, segments, created_at.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import CorruptedData, InvalidInput
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.project import Stores
    from loopline.store.monitoring import MonitorReportRecord

SCORE_KEYS = ("psi", "ks", "wasserstein", "js", "chi2")
HISTORY_REPORTS = 30  # earlier reports drawn as time series on a report's page


@dataclass(frozen=True)
class MonitorReport:
    """One monitoring report (see the module docstring for its fields)."""

    data: dict[str, Any]

    @property
    def id(self) -> str | None:
        return self.data.get("id")

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def passed(self) -> bool:
        """True unless a check failed (a skipped report passes: it judged nothing)."""
        return self.status != "failed"

    @property
    def failed(self) -> list[str]:
        return list(self.data.get("failed") or [])

    @property
    def features(self) -> dict[str, Any]:
        return dict(self.data.get("features") or {})

    @property
    def drifted(self) -> list[str]:
        return [name for name, found in self.features.items() if found.get("drifted")]

    @property
    def versions(self) -> dict[str, Any]:
        return dict(self.data.get("versions") or {})

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.to_json())
        return found

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(_finite(self.data), indent=indent, allow_nan=False, default=_plain)

    def html(self, history: list[dict[str, Any]] | None = None) -> str:
        """The report as one self-contained HTML page (no scripts, nothing fetched)."""
        from loopline.monitoring._html import render

        return render(self.data, history or [])

    def save_html(self, path: str | Path, history: list[dict[str, Any]] | None = None) -> Path:
        target = Path(path)
        target.write_text(self.html(history), encoding="utf-8")
        return target


def scores(report: MonitorReport) -> dict[str, Any]:
    """The headline figures kept in the index: per version, each feature's and output's
    statistics, and the performance metrics."""
    found: dict[str, Any] = {}
    for name, body in report.versions.items():
        entry: dict[str, Any] = {"role": body.get("role"), "rows": body.get("rows")}
        for part in ("features", "outputs"):
            entry[part] = {
                feature: {k: v for k, v in stats.items() if k in SCORE_KEYS and v is not None}
                | {"drifted": bool(stats.get("drifted"))}
                for feature, stats in (body.get(part) or {}).items()
            }
        performance = body.get("performance") or {}
        metrics = {}
        for source in ("realised", "estimated"):
            values = (performance.get(source) or {}).get("metrics") or {}
            metrics[source] = {k: v for k, v in values.items() if isinstance(v, int | float)}
        entry["metrics"] = metrics
        entry["coverage"] = performance.get("coverage")
        found[name] = entry
    return found


def store_report(
    report: MonitorReport, opened: Stores, *, schedule_key: str | None = None
) -> MonitorReport:
    """Store the report's JSON and HTML and index it; the report with its id. A scheduled
    window stored before (same `schedule_key`) gives back the stored report."""
    from loopline.config import current_user

    metadata = opened.metadata.monitoring
    deployment = report.data["deployment"]
    report_id = new_id()
    body = replace(report, data={"id": report_id, **report.data}).data
    stored = MonitorReport(body)
    history = [
        {
            "id": r.id,
            "created_at": r.created_at.isoformat(),
            "until": r.until.isoformat(),
            "scores": r.scores,
        }
        for r in reversed(metadata.list_reports(deployment, limit=HISTORY_REPORTS))
    ]
    json_blob = opened.artifacts.put_bytes(stored.to_json().encode())
    html_blob = opened.artifacts.put_bytes(stored.html(history).encode())
    window = body["window"]
    record = metadata.add_report(
        deployment,
        since=datetime.fromisoformat(window["since"]) if window.get("since") else None,
        until=datetime.fromisoformat(window["until"]),
        rows=int(body["rows"]),
        status=body["status"],
        failed=list(body.get("failed") or []),
        reference=body.get("reference"),
        report_hash=json_blob.hash,
        html_hash=html_blob.hash,
        scores=scores(stored),
        created_by=current_user(),
        schedule_key=schedule_key,
        report_id=report_id,
    )
    if record.id != report_id:  # the scheduled window was stored before
        return load_report(record.id, opened=opened)
    return stored


def list_reports(
    deployment: str | None = None, *, limit: int = 50, opened: Stores | None = None
) -> list[MonitorReportRecord]:
    """Stored reports, newest first (of one deployment when given)."""
    from loopline.project import stores

    if type(limit) is not int or not 1 <= limit <= 10_000:
        raise InvalidInput(f"limit must be an integer from 1 to 10000, got {limit!r}")
    return (opened or stores()).metadata.monitoring.list_reports(deployment, limit=limit)


def load_report(report_id: str, *, opened: Stores | None = None) -> MonitorReport:
    """A stored report by id (the blob's hash is checked as it is read).

    Raises NotFound for an unknown id, InvalidInput for a malformed one."""
    from loopline.project import stores

    check_report_id(report_id)
    opened = opened or stores()
    record = opened.metadata.monitoring.get_report(report_id)
    try:
        data = json.loads(opened.artifacts.get_bytes(record.report_hash))
    except ValueError as exc:
        raise CorruptedData(f"monitoring report {report_id} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("id") != report_id:
        raise CorruptedData(f"monitoring report {report_id} does not hold that report")
    return MonitorReport(data)


def report_html(report_id: str, *, opened: Stores | None = None) -> str:
    """The stored HTML page of a report."""
    from loopline.project import stores

    check_report_id(report_id)
    opened = opened or stores()
    record = opened.metadata.monitoring.get_report(report_id)
    if record.html_hash is None:
        return load_report(report_id, opened=opened).html()
    return opened.artifacts.get_bytes(record.html_hash).decode("utf-8")


def check_report_id(report_id: object) -> str:
    import re

    if not isinstance(report_id, str) or not re.fullmatch(r"[0-9a-f]{32}", report_id):
        raise InvalidInput(
            f"not a report id: {report_id!r}",
            hint="ids are 32 hex characters: see `loopline monitor ls`",
        )
    return report_id


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars and other plain values a report may hold."""
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    return str(value)
