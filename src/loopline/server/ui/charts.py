"""The data of the UI's metric charts, as JSON: one metric of 1 to 20 runs, downsampled.

    GET /charts/metric?key=loss&runs=ID[,ID...]&x=step|time&width=800[&start=A&end=B]

answers `{"key", "x", "series": [{"run", "name", "xs", "ys", "points", "skipped",
"downsampled", "truncated"}, ...]}`: per run, at most 2 x `width` points, the lowest and
highest of each of `width` buckets of the x range (`tracking.get_metric_chart`), so a
chart of 100,000 points travels as ~1,600 and still shows every spike. `start` and
`end` (steps, or epoch seconds for `x=time`) narrow the range: a chart zoomed in asks
again for finer points. The run page asks for its run, the compare page for all of its
runs at once (one chart, one series per run).

A JSON route beside the pages, not a page: its errors are the API's JSON bodies (a
malformed parameter 400, an unknown run 404), which static/charts.js shows in one line.
"""

from __future__ import annotations

import math
from typing import Literal

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput, MalformedRequest
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.serving.online._responses import json_response
from loopline.store._names import check_run_prefix
from loopline.tracking import get_metric_chart, get_run
from loopline.tracking.charts import WIDTHS

router = APIRouter(include_in_schema=False)

MAX_RUNS = 20


@router.get("/charts/metric")
def metric_chart(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """One metric of each run named, downsampled for a chart `width` pixels wide."""
    query = request.query_params
    key = _one(request, "key")
    run_ids = run_list(query.getlist("runs"))
    x = query.get("x", "step")
    if x not in ("step", "time"):
        raise MalformedRequest(f"x is 'step' or 'time', got {x[:20]!r}")
    axis: Literal["step", "time"] = "time" if x == "time" else "step"
    width = _number(query.get("width", "800"), "width")
    if width != int(width) or not WIDTHS[0] <= width <= WIDTHS[1]:
        raise MalformedRequest(f"width is a whole number {WIDTHS[0]}..{WIDTHS[1]}")
    start, end = (_bound(query.get(name), name) for name in ("start", "end"))
    series = []
    with bound_to(request):
        for run_id in run_ids:
            run = get_run(run_id)
            try:
                chart = get_metric_chart(
                    run.id, key, x=axis, width=int(width), start=start, end=end
                )
            except InvalidInput as exc:  # a range the chart cannot have: a bad parameter
                raise MalformedRequest(exc.message) from None
            series.append(
                {
                    "run": run.id,
                    "name": run.name,
                    "xs": chart.xs,
                    "ys": chart.values,
                    "points": chart.points,
                    "skipped": chart.skipped,
                    "downsampled": chart.downsampled,
                    "truncated": chart.truncated,
                }
            )
    return json_response({"key": key, "x": x, "series": series})


def run_list(values: list[str]) -> list[str]:
    """The run ids of `runs=a,b` or `runs=a&runs=b` (or both), each once, in order: 1 to
    MAX_RUNS of them, each a run id or a unique prefix (else MalformedRequest)."""
    found: list[str] = []
    for value in values:
        for item in value.split(","):
            text = item.strip()
            if text:
                try:
                    run_id = check_run_prefix(text)
                except InvalidInput as exc:
                    raise MalformedRequest(exc.message) from None
                if run_id not in found:
                    found.append(run_id)
    if not found:
        raise MalformedRequest("name the runs: ?runs=ID,ID,...")
    if len(found) > MAX_RUNS:
        raise MalformedRequest(f"at most {MAX_RUNS} runs at once, got {len(found)}")
    return found


def _one(request: Request, name: str) -> str:
    found = request.query_params.getlist(name)
    if len(found) != 1 or not found[0]:
        raise MalformedRequest(f"give {name} once")
    return found[0]


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MalformedRequest(f"{name} is a number, got {text[:20]!r}") from None
    if not math.isfinite(value):
        raise MalformedRequest(f"{name} is a finite number, got {text[:20]!r}")
    return value


def _bound(text: str | None, name: str) -> float | None:
    return None if text is None or text == "" else _number(text, name)
