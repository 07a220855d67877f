"""Comparing 2 to 20 runs: a table of their params and latest metrics where the rows that
differ are marked, their curves overlaid per metric, and parallel coordinates.

`/compare?runs=ID,ID,...` (or `runs=ID&runs=ID`, as the runs table's checkboxes send
it, without JavaScript): ids or unique prefixes, each counted once. Fewer than 2 or more
than 20 runs is a 400 page; an unknown id a 404 page. The table is the page's data:
static/compare.js draws the parallel coordinates from its differing rows (`data-value`
of each cell), static/charts.js the overlaid curves from /charts/metric. Without
JavaScript the table is all there is, and `&only=diff` (the checkbox, sent by the form)
hides the rows that are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import MalformedRequest
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import number, render
from loopline.server.ui.charts import MAX_RUNS, run_list
from loopline.server.ui.experiments import experiment_url
from loopline.store import Run
from loopline.tracking import get_run

router = page_router()


@dataclass(frozen=True)
class Row:
    """One line of the diff table: a param, a metric or an attribute of every run.
    `values` is what each cell shows, `raw` what compare.js reads ("" when missing)."""

    kind: str
    key: str
    values: list[str]
    raw: list[str]
    differs: bool

    @property
    def axis(self) -> str:
        return f"{self.kind}s.{self.key}" if self.kind != "attribute" else self.key


@router.get("/compare")
def compare(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """The runs named in `runs`, side by side."""
    run_ids = run_list(request.query_params.getlist("runs"))
    if len(run_ids) < 2:
        raise MalformedRequest(f"compare 2 to {MAX_RUNS} runs; got 1 (tick more in the table)")
    with bound_to(request):
        runs = [get_run(run_id) for run_id in run_ids]
    if len({run.id for run in runs}) < 2:  # two prefixes of one run
        raise MalformedRequest(f"compare 2 to {MAX_RUNS} different runs; these name one run")
    metric_keys = sorted({key for run in runs for key in run.metrics})
    context = {
        "runs": runs,
        "runs_param": ",".join(run.id for run in runs),
        "experiment_hrefs": [experiment_url(run.experiment) for run in runs],
        "rows": diff_rows(runs),
        "metric_keys": metric_keys,
        "only_diff": request.query_params.get("only") == "diff",
    }
    return render(request, "compare.html", context)


def diff_rows(runs: list[Run]) -> list[Row]:
    """Attributes, then every param, then every metric any of the runs holds; a row
    differs when its values do (a missing value differs from any value; NaN equals NaN)."""
    rows = [
        _row("attribute", "experiment", [run.experiment for run in runs]),
        _row("attribute", "status", [run.status.value.lower() for run in runs]),
        _row("attribute", "commit", [(run.code.commit or "")[:12] for run in runs]),
    ]
    for key in sorted({key for run in runs for key in run.params}):
        rows.append(_row("param", key, [run.params.get(key) for run in runs]))
    for key in sorted({key for run in runs for key in run.metrics}):
        values = [run.metrics.get(key) for run in runs]
        shown = [number(value) for value in values]
        raw = ["" if v is None or not math.isfinite(v) else repr(v) for v in values]
        same = len({"missing" if v is None else "nan" if math.isnan(v) else v for v in values}) == 1
        rows.append(Row("metric", key, shown, raw, not same))
    return rows


def _row(kind: str, key: str, values: list[str | None]) -> Row:
    shown = ["" if value is None else value for value in values]
    return Row(kind, key, shown, shown, len(set(values)) > 1)
