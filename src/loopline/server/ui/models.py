"""Models: the registry's list, a model's versions, and one version's page.

`/models/{name}/{version}` gathers what the registry and the reviews know of a version:
its status, aliases and signature; its gate checks (each rule, the value found, why it
passed or failed); its latest evaluation (metrics, slices, fairness, calibration and
curves; see _model_views); its model card (the stored one, from its last promotion or
approval, else generated now); its approvals; and its lineage, from the dataset
versions its run read to the deployments serving it (an SVG graph, see _lineage). The
sections are tabs (static/models.js); without JavaScript they are one long page.

Versions in URLs are numbers (400 otherwise); an unknown model or version is 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from loopline import registry
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui import _figures
from loopline.server.ui._lineage import lineage_graph
from loopline.server.ui._model_views import card_view, evaluation_view
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import render
from loopline.server.ui.datasets import version_number
from loopline.store import check_model_name

router = page_router()

MAX_EVALUATIONS = 10  # the newest evaluations listed (the latest is shown in full)
MAX_GATE_CHECKS = 5  # the newest gate checks shown


@router.get("/models")
def models_page(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every registered model: latest version, aliases and description."""
    with bound_to(request):
        found = registry.list_models()
    return render(request, "models.html", {"models": found, "url_of": model_url})


@router.get("/models/{name}")
def model_page(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """A model's versions, newest first, with status, aliases and the deployments
    serving each."""
    from loopline.serving import list_deployments

    check_model_name(name)
    with bound_to(request):
        model = registry.get_model(name)
        versions = registry.list_versions(name)
        deployments = list_deployments()
    aliases: dict[int, list[str]] = {}
    for alias, number in sorted(model.aliases.items()):
        aliases.setdefault(number, []).append(alias)
    serving: dict[int, list[tuple[str, str]]] = {}
    for version in versions:
        for deployment in deployments:
            role = deployment.spec.role_of(version.ref)
            if role is not None:
                serving.setdefault(version.version, []).append((deployment.name, role))
    context = {
        "model": model,
        "versions": versions,
        "aliases": aliases,
        "serving": serving,
        "model_href": model_url(name),
        "deployment_url": deployment_url,
    }
    return render(request, "model.html", context)


@router.get("/models/{name}/{version}")
def version_page(
    name: str, version: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """One version: overview, gates, evaluation, card, approvals and lineage."""
    # the review areas load on the first version page, not when the server starts
    from loopline import cards, evaluation, models, promotion, serving

    check_model_name(name)
    number = version_number(version)
    with bound_to(request):
        found = registry.resolve(f"{name}/{number}")
        model = registry.get_model(name)
        aliases = registry.aliases_of(found)
        checks = promotion.list_gate_checks(found)[:MAX_GATE_CHECKS]
        approvals = promotion.list_approvals(found)
        evaluations = evaluation.list_evaluations(found)[:MAX_EVALUATIONS]
        latest = evaluation.latest_evaluation(found)
        card = cards.stored_card(found)
        stored = card is not None
        if card is None:
            card = cards.build_card(found)
        tree = models.model_lineage(found)
        deployed = serving.deployments_serving(found.ref)
    context: dict[str, Any] = {
        "version": found,
        "model": model,
        "aliases": aliases,
        "model_href": model_url(name),
        "run_href": None if found.run_id is None else f"/runs/{found.run_id}",
        "checks": checks,
        "approvals": approvals,
        "evaluations": evaluations,
        "latest": latest,
        "report": None if latest is None else evaluation_view(latest.report),
        "card": card_view(card),
        "card_stored": stored,
        "graph": lineage_graph(tree, deployed),
        "deployed": deployed,
        "deployment_url": deployment_url,
        "size": _figures.size,
        "short": _figures.short,
    }
    return render(request, "model_version.html", context)


def model_url(name: str) -> str:
    return f"/models/{quote(name, safe='')}"


def deployment_url(name: str) -> str:
    return f"/deployments/{quote(name, safe='')}"
