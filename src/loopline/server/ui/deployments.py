"""Deployments: the list, and a deployment's page (its traffic split, its servers, its
traffic over time from the prediction log, and its revision history).

`/deployments/{name}?window=24h` charts the window named (WINDOWS: 1h to 30d, in a fixed
number of buckets, aligned so that a reload shows the same buckets; without one, 24h, or
the shortest window holding a younger deployment's whole life); a window not in WINDOWS
is a 400 page. The charts are uPlot (static/ops.js) over figures the server
computes (`predictions.read_traffic`, DuckDB over the log's Parquet files) and hands to
the page as JSON in a `data-chart` attribute; the same figures are in a table for a
page without JavaScript.

The prediction log holds answered requests only, so the "errors" it can chart are the
shadow's; refused and failed requests are counted by each server's /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import render
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.predictions import Traffic
    from loopline.serving import DeploymentSpec
    from loopline.store.deployments import DeploymentRevision

router = page_router()

# window -> (its length, one bucket's length)
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=20)),
    "7d": (timedelta(days=7), timedelta(hours=2)),
    "30d": (timedelta(days=30), timedelta(hours=12)),
}
DEFAULT_WINDOW = "24h"
HISTORY = 200  # revisions shown


@dataclass(frozen=True)
class Share:
    """One model version's part of a deployment's traffic (`percent` of requests)."""

    model: str
    role: str  # stable, canary or ab (one of an A/B split)
    percent: float
    start: float  # where its bar begins, in percent


@router.get("/deployments")
def deployments(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every deployment: what it serves and how traffic is split, and its servers."""
    from loopline.serving import list_deployments, servers_by_deployment
    from loopline.serving.servers import servers_summary

    with bound_to(request) as opened:
        found = list_deployments()
        servers = servers_by_deployment()
        open_alerts = opened.metadata.monitoring.alerts(status="open", limit=1000)
    alerts: dict[str, int] = {}
    for alert in open_alerts:
        alerts[alert.deployment] = alerts.get(alert.deployment, 0) + 1
    rows = [
        {
            "deployment": deployment,
            "shares": shares(deployment.spec),
            "servers": servers_summary(servers.get(deployment.name, []), deployment.revision),
            "alerts": alerts.get(deployment.name, 0),
        }
        for deployment in found
    ]
    context = {"rows": rows, "url_of": deployment_url, "model_url": model_url}
    return render(request, "deployments.html", context)


@router.get("/deployments/{name}")
def deployment(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """A deployment's split, servers, traffic over the window asked for, and revisions."""
    from loopline.predictions import read_traffic
    from loopline.serving import deployment_history, get_deployment, server_status

    check_deployment_name(name)
    asked = request.query_params.get("window")
    if asked is not None and asked not in WINDOWS:
        choices = ", ".join(WINDOWS)
        raise InvalidInput(f"window must be one of {choices}, got {asked[:20]!r}")
    now = datetime.now(UTC)
    with bound_to(request):
        current = get_deployment(name)
        chosen = asked or default_window(current.created_at, now)
        length, bucket = WINDOWS[chosen]
        until = ceil_to(now, bucket)
        history = deployment_history(name)[:HISTORY]
        servers = server_status(name)
        traffic = read_traffic(name, since=until - length, until=until, bucket=bucket)
    context = {
        "deployment": current,
        "shares": shares(current.spec),
        "servers": servers,
        "revisions": revisions(history),
        "traffic": traffic,
        "charts": traffic_charts(traffic),
        "figures": figures(traffic),
        "windows": list(WINDOWS),
        "window": chosen,
        "base": deployment_url(name),
        "model_url": model_url,
    }
    return render(request, "deployment.html", context)


def default_window(created_at: datetime, now: datetime) -> str:
    """The window a deployment's page opens with: for a deployment younger than
    DEFAULT_WINDOW, the shortest window that holds its whole life (its first hour would
    be a sliver at the right edge of a day's charts); else DEFAULT_WINDOW."""
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    age = now - created_at
    default_length = WINDOWS[DEFAULT_WINDOW][0]
    for name, (length, _) in WINDOWS.items():
        if age <= length or length >= default_length:
            return name
    return DEFAULT_WINDOW


def shares(spec: DeploymentSpec) -> list[Share]:
    """How a configuration splits requests between versions (the shadow answers none)."""
    if spec.ab:
        each = 100.0 / len(spec.ab)
        return [Share(v.model, "ab", each, each * i) for i, v in enumerate(spec.ab)]
    if spec.canary is not None:
        stable = 100.0 - spec.weight
        return [
            Share(spec.model.model, "stable", stable, 0.0),
            Share(spec.canary.model, "canary", spec.weight, stable),
        ]
    return [Share(spec.model.model, "stable", 100.0, 0.0)]


def revisions(history: list[DeploymentRevision]) -> list[dict[str, Any]]:
    """Each revision (newest first) with what changed from the one before it."""
    from loopline.serving import DeploymentSpec

    specs = [DeploymentSpec.from_dict(r.config) for r in history]
    return [
        {
            "revision": revision,
            "spec": spec,
            "changes": changes(specs[i + 1] if i + 1 < len(specs) else None, spec),
        }
        for i, (revision, spec) in enumerate(zip(history, specs, strict=True))
    ]


def changes(before: DeploymentSpec | None, after: DeploymentSpec) -> list[str]:
    """What a revision changed, one phrase per part of the configuration."""
    if before is None:
        return [f"serves {after.describe()}"]
    found = []
    if before.model.model != after.model.model and not after.ab:
        found.append(f"model {before.model.model} → {after.model.model}")
    found += _canary_change(before, after)
    if before.shadow != after.shadow:
        if after.shadow is None:
            found.append(f"shadow {before.shadow.model if before.shadow else ''} removed")
        else:
            found.append(f"shadow {after.shadow.model}")
    if (before.ab, before.key) != (after.ab, after.key):
        found.append(
            f"A/B {' | '.join(v.model for v in after.ab)} by {after.key}"
            if after.ab
            else "A/B split ended"
        )
    if before.runtime != after.runtime:
        found.append(f"runtime {before.runtime} → {after.runtime}")
    if before.strict_inputs != after.strict_inputs:
        found.append("strict inputs " + ("on" if after.strict_inputs else "off"))
    return found or ["no change to the configuration"]


def _canary_change(before: DeploymentSpec, after: DeploymentSpec) -> list[str]:
    old, new = before.canary, after.canary
    if old is None and new is None:
        return []
    if new is None:
        return [f"canary {old.model if old else ''} removed"]
    if old is None or old.model != new.model:
        return [f"canary {new.model} at {after.weight:g}%"]
    if before.weight != after.weight:
        return [f"canary weight {before.weight:g}% → {after.weight:g}%"]
    return []


def traffic_charts(traffic: Traffic) -> list[dict[str, Any]]:
    """The deployment page's charts, as static/ops.js draws them."""
    x = [int(start.timestamp()) for start in traffic.starts]
    per = _bucket_name(traffic.bucket)
    coverage = [
        round(100 * labelled / rows, 2) if rows else None
        for labelled, rows in zip(traffic.labelled, traffic.rows, strict=True)
    ]
    by_version = [{"label": v, "values": list(n)} for v, n in traffic.versions.items()]
    return [
        {
            "id": "requests",
            "title": f"Requests per {per}",
            "unit": "requests",
            "x": x,
            "series": [{"label": "all", "values": list(traffic.requests)}, *by_version],
        },
        {
            "id": "latency",
            "title": "Latency (ms)",
            "unit": "ms",
            "x": x,
            "series": [
                {"label": "p50", "values": _rounded(traffic.latency_p50)},
                {"label": "p95", "values": _rounded(traffic.latency_p95)},
            ],
        },
        {
            "id": "errors",
            "title": f"Shadow errors per {per}",
            "unit": "requests",
            "x": x,
            "series": [
                {"label": "shadowed", "values": list(traffic.shadowed)},
                {"label": "shadow failed", "values": list(traffic.shadow_errors)},
            ],
        },
        {
            "id": "coverage",
            "title": "Feedback coverage (% of logged rows labelled)",
            "unit": "%",
            "x": x,
            "series": [{"label": "labelled", "values": coverage}],
        },
    ]


def figures(traffic: Traffic) -> list[dict[str, Any]]:
    """The buckets that hold requests, newest first: the charts' figures as a table."""
    found = []
    for i, start in enumerate(traffic.starts):
        if traffic.requests[i]:
            rows = traffic.rows[i]
            found.append(
                {
                    "start": start,
                    "requests": traffic.requests[i],
                    "rows": rows,
                    "p50": traffic.latency_p50[i],
                    "p95": traffic.latency_p95[i],
                    "shadow_errors": traffic.shadow_errors[i],
                    "coverage": traffic.labelled[i] / rows if rows else None,
                }
            )
    return found[::-1]


def _rounded(values: tuple[float | None, ...]) -> list[float | None]:
    return [None if value is None else round(value, 3) for value in values]


def _bucket_name(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    if minutes % 60:
        return "minute" if minutes == 1 else f"{minutes} minutes"
    hours = minutes // 60
    return "hour" if hours == 1 else f"{hours} hours"


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    """The first multiple of `step` (since the epoch) at or after `moment`."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + -((epoch - moment) // step) * step


def deployment_url(name: str) -> str:
    return f"/deployments/{quote(name, safe='')}"


def model_url(ref: str) -> str:
    """The page of a model version named as a deployment stores it ("churn/3")."""
    name, _, version = ref.rpartition("/")
    return f"/models/{quote(name, safe='')}/{quote(version, safe='')}"


def dataset_url(ref: str) -> str:
    """The page of a dataset version named as the loop records it ("churn-train@2")."""
    name, _, version = ref.rpartition("@")
    return f"/datasets/{quote(name, safe='')}/{quote(version, safe='')}"
