"""A run's page: its name, status, times, code version, params, latest metrics and tags.

(Metric charts, artifacts, lineage and the environment join it in the UI's next phase.)
`/runs/{id}` takes a full run id or a unique prefix of it, as `loopline runs show` does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import render
from loopline.server.ui.experiments import experiment_url
from loopline.store._names import check_run_prefix
from loopline.tracking import get_run

router = page_router()


@router.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """One run (404 for an unknown id, 400 for text that is no run id)."""
    with bound_to(request):
        run = get_run(check_run_prefix(run_id))
    context = {"run": run, "experiment_href": experiment_url(run.experiment)}
    return render(request, "run.html", context)
