"""`loopline trace REQUEST_ID`: one logged prediction and everything behind it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from loopline.cli._output import console

if TYPE_CHECKING:
    from rich.console import RenderableType

    from loopline.monitoring.trace import Trace


def trace(
    request_id: str = typer.Argument(..., help="The request's id (its X-Request-Id)."),
    row: int | None = typer.Option(None, "--row", help="Which row of the request (from 0)."),
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="The deployment, when two logged the same id."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Trace a logged prediction: inputs and output, the deployment revision and routing,
    the model version, its training run and datasets, its promotion, the feedback.

    Example: loopline trace 4bf92f3577b34da6a3ce929d0e0e4736 --row 1
    """
    from loopline.cli._project import open_project
    from loopline.monitoring.trace import trace as find_trace

    open_project()
    found = find_trace(request_id, row=row, deployment=deployment)
    if as_json:
        console.print_json(json.dumps(found.to_dict(), allow_nan=False))
        return
    for panel in _panels(found):
        console.print(panel)


def _panels(found: Trace) -> list[RenderableType]:
    from rich.panel import Panel

    prediction = found.prediction
    title = f"request {found.request_id}, row {found.row} of {prediction['rows_in_request']}"
    shown: list[RenderableType] = [
        Panel(_pairs(_prediction_pairs(found)), title=f"Prediction: {title}", title_align="left"),
        Panel(_pairs(_flat(prediction["inputs"] or {})), title="Inputs", title_align="left"),
    ]
    revision, routing = found.revision, found.routing
    if revision is not None and routing is not None:
        pairs = {
            "revision": f"{revision['revision']} (now {revision['current_revision']})",
            "action": revision["action"],
            "by": revision["actor"],
            "when": revision["time"],
            "why": revision["reason"] or "-",
            "strategy": routing["strategy"],
            "chosen by": _chosen(routing),
        }
        if routing["shadow"]:
            pairs["shadow"] = routing["shadow"]["version"] or routing["shadow"]["configured"]
        shown.append(Panel(_pairs(pairs), title="Deployment revision", title_align="left"))
    else:
        shown.append(_missing("Deployment revision", "no revision of the deployment is stored"))
    shown.append(_model_panel(found))
    shown.append(_run_panel(found))
    shown.append(_datasets_panel(found))
    shown.append(_promotion_panel(found))
    feedback = found.feedback
    if feedback is None:
        shown.append(_missing("Feedback", "no label arrived for this row"))
    else:
        text = {"label": json.dumps(feedback["label"]), "when": feedback["time"]}
        shown.append(Panel(_pairs(text), title="Feedback", title_align="left"))
    return shown


def _prediction_pairs(found: Trace) -> dict[str, Any]:
    prediction = found.prediction
    pairs: dict[str, Any] = {
        "deployment": found.deployment,
        "output": json.dumps(prediction["output"]),
        "probabilities": json.dumps(prediction["probabilities"]),
        "model version": prediction["model_version"],
        "ran as": prediction["runtime_version"],
        "time": prediction["time"],
        "latency": f"{prediction['latency_ms']:.2f} ms"
        if prediction["latency_ms"] is not None
        else "-",
        "endpoint": prediction["endpoint"],
    }
    if prediction["dropped_fields"]:
        pairs["dropped fields"] = ", ".join(prediction["dropped_fields"])
    shadow = prediction["shadow"]
    if shadow is not None:
        said = shadow["error"] or json.dumps(shadow["prediction"])
        pairs["shadow"] = f"{shadow['version']}: {said}"
    return pairs


def _chosen(routing: dict[str, Any]) -> str:
    how = routing["chosen_by"]
    share = routing["share_percent"]
    if how == "ab":
        return f"A/B arm {routing['arm']} by key {routing['key'] or 'request id'} ({share:g}%)"
    if how in ("canary", "model"):
        return f"{how} ({share:g}% of requests)"
    return "unknown: the revision's spec does not name the logged version"


def _model_panel(found: Trace) -> RenderableType:
    from rich.panel import Panel

    model = found.model
    if model is None:
        return _missing("Model version", "the logged version is not in the registry")
    pairs = {
        "version": model["ref"],
        "status": model["status"],
        "aliases": ", ".join(model["aliases"]) or "-",
        "flavor": model["flavor"],
        "exported from": model["source_version"] or "-",
        "registered": f"{model['created_at']} by {model['created_by']}",
    }
    return Panel(_pairs(pairs), title="Model version", title_align="left")


def _run_panel(found: Trace) -> RenderableType:
    from rich.panel import Panel

    run = found.run
    if run is None:
        return _missing("Training run", "the version names no run")
    dirty = {True: " (dirty)", False: " (clean)"}.get(run["dirty"], "")
    pairs = {
        "run": f"{run['id']} ({run['experiment']}/{run['name']})",
        "status": run["status"],
        "commit": f"{run['commit'] or '-'}{dirty}",
        "by": run["user"],
        "started": run["start_time"],
        **{f"param {k}": v for k, v in sorted(run["params"].items())},
        **{f"metric {k}": v for k, v in sorted(run["metrics"].items())},
    }
    return Panel(_pairs(pairs), title="Training run", title_align="left")


def _datasets_panel(found: Trace) -> RenderableType:
    from rich.panel import Panel
    from rich.table import Table

    if not found.datasets:
        return _missing("Training data", "the run recorded no dataset version")
    table = Table(box=None)
    for column in ("version", "rows", "author", "validations"):
        table.add_column(column)
    for dataset in found.datasets:
        checks = dataset.get("validations") or []
        text = ", ".join(f"{c['suite']}: {_verdict(c)}" for c in checks)
        table.add_row(
            str(dataset.get("ref") or f"{dataset['name']} (deleted)"),
            str(dataset.get("rows", "-")),
            str(dataset.get("author", "-")),
            text or "none",
        )
    return Panel(table, title="Training data", title_align="left")


def _verdict(check: dict[str, Any]) -> str:
    return "passed" if check["success"] else f"{check['failed']} failed"


def _promotion_panel(found: Trace) -> RenderableType:
    from rich.panel import Panel
    from rich.table import Table

    promotion = found.promotion
    if promotion is None:
        return _missing("Promotion", "no registered version")
    table = Table(box=None)
    for column in ("when", "what", "who", "detail"):
        table.add_column(column)
    for gate in promotion["gate_checks"]:
        failed = [r for r in gate["results"] if not r.get("passed", True)]
        verdict = "passed" if gate["passed"] else f"failed {len(failed)} rules"
        table.add_row(gate["time"], "gates", gate["actor"], verdict)
    for approval in promotion["approvals"]:
        table.add_row(
            approval["time"],
            f"approval ({approval['stage']})",
            approval["actor"],
            approval["reason"],
        )
    for event in promotion["events"]:
        table.add_row(event["time"], event["action"], event["actor"], event["reason"] or "")
    if not table.rows:
        return _missing("Promotion", "no gate checks, approvals or registry events")
    return Panel(table, title="Promotion", title_align="left")


def _missing(title: str, why: str) -> RenderableType:
    from rich.panel import Panel

    return Panel(f"[dim]{why}[/]", title=title, title_align="left")


def _pairs(pairs: dict[str, Any]) -> RenderableType:
    from rich.table import Table

    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs.items():
        table.add_row(key, "-" if value is None else str(value))
    return table


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    return {
        key: json.dumps(value) if isinstance(value, dict | list) else value
        for key, value in values.items()
    }
