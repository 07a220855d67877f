"""Experiments: the list (the UI's home page) and an experiment's runs table.

`/experiments/{name}` is the whole page; the same URL asked by htmx for `#runs` answers
that element alone (filter, column picker, table, pager), which htmx swaps in and pushes
to the history. A filter or order that does not parse shows the parser's one-line error
above an empty table, with status 400 (page and fragment alike).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router, wants_fragment
from loopline.server.ui._render import render
from loopline.server.ui._runs_table import (
    FIXED,
    PAGE_SIZE,
    TableQuery,
    choices,
    load_table,
)
from loopline.store import check_experiment_name
from loopline.tracking import list_experiments

router = page_router()

TABLE_ID = "runs"


@router.get("/")
def experiments(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every experiment: its name, number of runs and the start of its newest run."""
    with bound_to(request):
        found = list_experiments()
    found.sort(key=lambda e: e.name.lower())
    return render(request, "experiments.html", {"experiments": found, "url_of": experiment_url})


@router.get("/experiments/{name}")
def experiment(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """An experiment's runs table (the page, or `#runs` alone for htmx)."""
    check_experiment_name(name)
    base = experiment_url(name)
    context: dict[str, object] = {
        "name": name,
        "base": base,
        "fixed": FIXED,
        "table_id": TABLE_ID,
        "page_size": PAGE_SIZE,
        "error": None,
    }
    status = 200
    query = TableQuery()
    with bound_to(request):
        try:
            query = TableQuery.from_query(request.query_params)
            table = load_table(name, query)
        except InvalidInput as exc:  # a bad filter, order, page or column: shown above
            context["error"], status = exc.message, 400
            table = None
    context.update({"query": query, "table": table})
    context["choices"] = choices(table.keys) if table is not None else []
    template = "_runs_table.html" if wants_fragment(request, TABLE_ID) else "experiment.html"
    return render(request, template, context, status)


def experiment_url(name: str) -> str:
    return f"/experiments/{quote(name, safe='')}"
