"""Monitoring: every deployment's latest verdict and open alerts (`/monitoring`), and a
deployment's monitoring page (`/deployments/{name}/monitoring`): drift per feature over
its stored reports, its alerts, its retrain loops step by step, and the changes and
actions the audit log holds for it. A stored report's own page opens at
`/monitoring/reports/{id}`.

Drift over time is read from the reports' index rows (`MonitorReportRecord.scores`: per
model version, each feature's PSI and whether it drifted), so no report blob is fetched
for it: the page costs a few indexed queries however many features are watched.

A report's HTML is made by the monitor, not by this UI, so it is never part of a page:
it is shown in an `<iframe sandbox>` (no scripts, an opaque origin) from a route whose
own Content-Security-Policy sandboxes it too, so it cannot run as this site even when
its URL is opened directly.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import render
from loopline.server.ui.deployments import dataset_url, deployment_url, model_url
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.loop.retrain import LoopRun
    from loopline.store.monitoring import MonitorReportRecord

router = page_router()

REPORTS = 30  # reports (columns) of the drift tables
LOOPS = 20
EVENTS = 100
FACT_CHARS = 120  # a step's value shown at most (the audit log has it whole)
CHARTED = 8  # features drawn per version (the table shows them all)
PSI_LEVELS = (0.1, 0.25, 0.5)  # a PSI at or above each starts the next shade
ROLE_ORDER = ("stable", "canary", "variant", "shadow", "previous")
# the report's own page: sandboxed (no script, an opaque origin), framed only by this site
REPORT_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


@router.get("/monitoring")
def overview(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Each deployment's latest report and open alerts; every open alert."""
    from loopline.loop.canary import list_loops
    from loopline.monitoring import list_reports
    from loopline.serving import list_deployments

    with bound_to(request) as opened:
        names = [d.name for d in list_deployments()]
        latest = {name: list_reports(name, limit=1) for name in names}
        alerts = opened.metadata.monitoring.alerts(status="open", limit=1000)
        loops = list_loops(limit=LOOPS)
    rows = []
    for name in names:
        report = latest[name][0] if latest[name] else None
        rows.append(
            {
                "name": name,
                "report": report,
                "drifted": drifted_features(report) if report else [],
                "alerts": sum(1 for a in alerts if a.deployment == name),
                "loop": next((loop for loop in loops if loop.deployment == name), None),
            }
        )
    context = {"rows": rows, "alerts": alerts, "deployment_url": deployment_url}
    return render(request, "monitoring.html", context)


@router.get("/deployments/{name}/monitoring")
def deployment_monitoring(
    name: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """A deployment's drift over time, alerts, retrain loops and recorded actions."""
    from loopline.loop.canary import list_loops
    from loopline.monitoring import list_reports
    from loopline.serving import get_deployment

    check_deployment_name(name)
    with bound_to(request) as opened:
        current = get_deployment(name)
        reports = list_reports(name, limit=REPORTS)[::-1]  # oldest first
        alerts = opened.metadata.monitoring.alerts(name, limit=200)
        loops = list_loops(name, limit=LOOPS)
        events = [
            event
            for event in opened.metadata.audit.list_events(object_id=name, limit=EVENTS)
            if event.object_type == "deployment"
        ]
    tables = drift_tables(reports)
    context = {
        "deployment": current,
        "base": deployment_url(name),
        "reports": reports[::-1],
        "tables": tables,
        "charts": [drift_chart(i, table, reports) for i, table in enumerate(tables)]
        if len(reports) > 1
        else [],  # one report is no series: its table says it all
        "alerts": alerts,
        "loops": [loop_view(loop) for loop in loops],
        "events": events,
        "model_url": model_url,
    }
    return render(request, "deployment_monitoring.html", context)


@router.get("/monitoring/reports/{report_id}")
def report_page(
    report_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """A stored report: its index row, and its own page in a sandboxed frame."""
    from loopline.monitoring.report import check_report_id

    check_report_id(report_id)
    with bound_to(request) as opened:
        report = opened.metadata.monitoring.get_report(report_id)
    context = {"report": report, "deployment_href": deployment_url(report.deployment)}
    return render(request, "monitor_report.html", context)


@router.get("/monitoring/reports/{report_id}/page")
def report_html(
    report_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """The report's stored HTML page, sandboxed by its own CSP (see the module docstring)."""
    from loopline.monitoring.report import report_html as stored_html

    with bound_to(request):
        html = stored_html(report_id)
    headers = {
        "Content-Security-Policy": REPORT_POLICY,
        "X-Frame-Options": "SAMEORIGIN",
        "Content-Disposition": f'inline; filename="monitoring-report-{report_id}.html"',
    }
    return HTMLResponse(html, headers=headers)


def drifted_features(report: MonitorReportRecord) -> list[str]:
    """The features that drifted for the report's stable version (or any, without one)."""
    found: set[str] = set()
    for body in report.scores.values():
        if body.get("role") in ("stable", None) or len(report.scores) == 1:
            features = body.get("features") or {}
            found |= {name for name, stats in features.items() if stats.get("drifted")}
    return sorted(found)


def drift_tables(reports: list[MonitorReportRecord]) -> list[dict[str, Any]]:
    """Per model version (stable first): its features' PSI in each report, oldest first,
    as rows of cells {psi, level, drifted} (None where a report did not score it)."""
    versions: dict[str, str] = {}
    for report in reports:
        for version, body in report.scores.items():
            versions[version] = str(body.get("role") or "previous")  # the latest role
    tables = []
    for version, role in sorted(versions.items(), key=lambda item: _role_rank(item[1])):
        names: dict[tuple[str, str], None] = {}
        for report in reports:
            body = report.scores.get(version) or {}
            for part in ("features", "outputs"):
                names.update(dict.fromkeys((part, n) for n in body.get(part) or {}))
        rows = [
            {
                "name": feature,
                "output": part == "outputs",
                "cells": [_cell(report, version, part, feature) for report in reports],
            }
            for part, feature in names
        ]
        if rows:
            tables.append({"version": version, "role": role, "rows": rows})
    return tables


def drift_chart(
    index: int, table: dict[str, Any], reports: list[MonitorReportRecord]
) -> dict[str, Any]:
    """A version's PSI over the reports' windows, for static/ops.js: of the CHARTED
    features with the highest PSI (thirty lines would hide each other; the table below
    the charts holds every feature)."""
    series = [
        {
            "label": ("output " if row["output"] else "") + row["name"],
            "values": [cell["psi"] if cell else None for cell in row["cells"]],
        }
        for row in table["rows"]
    ]
    series.sort(key=lambda one: -max((v for v in one["values"] if v is not None), default=0))
    title = f"PSI: {table['version']} ({table['role']})"
    if len(series) > CHARTED:
        title += f", the {CHARTED} features that drifted most"
    return {
        "id": f"drift-{index}",
        "title": title,
        "unit": "PSI",
        "x": [int(report.until.timestamp()) for report in reports],
        "series": series[:CHARTED],
    }


def loop_view(loop: LoopRun) -> dict[str, Any]:
    """A retrain loop's steps, each with links to what it made or used."""
    return {
        "loop": loop,
        "steps": [
            {"step": step, "links": step_links(step.detail), "facts": step_facts(step.detail)}
            for step in loop.steps
        ],
    }


def step_links(detail: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, label, href) for the runs, model versions and datasets a step names."""
    links = []
    for key in ("candidate", "champion"):
        if isinstance(detail.get(key), str):
            links.append((key, detail[key], model_url(detail[key])))
    for key in ("training", "holdout", "data"):
        if isinstance(detail.get(key), str) and "@" in detail[key]:
            links.append((key, detail[key], dataset_url(detail[key])))
    if isinstance(detail.get("run"), str):
        links.append(("run", detail["run"][:8], f"/runs/{detail['run']}"))
    trigger = detail.get("trigger")
    report = trigger.get("report") if isinstance(trigger, dict) else detail.get("report")
    if isinstance(report, str) and re.fullmatch(r"[0-9a-f]{32}", report):
        links.append(("report", report[:8], f"/monitoring/reports/{report}"))
    return links


def step_facts(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """The plain values of a step (not linked, not the deployment), as text."""
    skip = {"deployment", "candidate", "champion", "training", "holdout", "data", "run", "report"}
    facts = []
    for key, value in detail.items():
        if key in skip:
            continue
        if key == "trigger" and isinstance(value, dict):
            failed = ", ".join(map(str, value.get("failed") or []))
            value = f"{value.get('by', '?')}" + (f" ({failed} failed)" if failed else "")
        text = value if isinstance(value, str) else _json(value)
        facts.append((key, text if len(text) <= FACT_CHARS else text[: FACT_CHARS - 1] + "…"))
    return facts


def _cell(
    report: MonitorReportRecord, version: str, part: str, feature: str
) -> dict[str, Any] | None:
    stats = ((report.scores.get(version) or {}).get(part) or {}).get(feature)
    if not isinstance(stats, dict):
        return None
    psi = stats.get("psi")
    if not isinstance(psi, int | float) or not math.isfinite(psi):
        return {"psi": None, "level": None, "drifted": bool(stats.get("drifted"))}
    level = sum(1 for edge in PSI_LEVELS if psi >= edge)
    return {"psi": float(psi), "level": level, "drifted": bool(stats.get("drifted"))}


def _role_rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
