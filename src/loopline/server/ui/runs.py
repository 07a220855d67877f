"""A run's page: what it is (status, times, command, code version with its uncommitted
diff, packages), what it logged (params, latest metrics with a chart of each, tags,
artifacts) and what it read and wrote (lineage: dataset versions, model versions, data
frames).

`/runs/{id}` takes a full run id or a unique prefix of it, as `loopline runs show` does.
The charts are drawn by static/charts.js from `/charts/metric` (charts.py); the page
without JavaScript still has every latest value. The diff and the package list are the
run's own system artifacts (`_loopline/code.patch`, `_loopline/requirements.txt`),
shown as text, bounded by DIFF_MAX and PACKAGES_MAX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import NotFound
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._previews import SCAN_MAX, read_head, size_text
from loopline.server.ui._render import render
from loopline.server.ui.artifacts import artifact_url
from loopline.server.ui.experiments import experiment_url
from loopline.store import Direction, LinkKind, RunLink
from loopline.store._names import check_run_prefix
from loopline.tracking import describe_link, get_run, lineage, list_artifacts, open_artifact

router = page_router()

PATCH = "_loopline/code.patch"
PACKAGES = "_loopline/requirements.txt"
DIFF_MAX = 512 * 1024
PACKAGES_MAX = 256 * 1024
ARTIFACTS_SHOWN = 1_000
KIND_LABELS = {
    LinkKind.DATASET_VERSION: "dataset version",
    LinkKind.MODEL_VERSION: "model version",
    LinkKind.FEATURE_VIEW: "feature view",
    LinkKind.DATAFRAME: "data frame",
}


@dataclass(frozen=True)
class Lineage:
    """One thing the run read or wrote, as the page lists it (`href` None: no page)."""

    direction: str
    kind: str
    text: str
    href: str | None


@dataclass(frozen=True)
class TextArtifact:
    """A system artifact shown as text: its lines (at most `limit` bytes of them)."""

    lines: list[str]
    size: int
    cut: bool
    href: str


@router.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """One run (404 for an unknown id, 400 for text that is no run id)."""
    with bound_to(request):
        run = get_run(check_run_prefix(run_id))
        artifacts = list_artifacts(run.id)
        links = [_lineage(link) for link in lineage(run.id)]
        patch = _text_artifact(run.id, PATCH, DIFF_MAX)
        packages = _text_artifact(run.id, PACKAGES, PACKAGES_MAX)
    context = {
        "run": run,
        "experiment_href": experiment_url(run.experiment),
        "metric_keys": sorted(run.metrics),
        "artifacts": [
            (link.name, size_text(link.size), artifact_url(run.id, link.name))
            for link in artifacts[:ARTIFACTS_SHOWN]
        ],
        "artifact_count": len(artifacts),
        "inputs": [row for row in links if row.direction == "input"],
        "outputs": [row for row in links if row.direction == "output"],
        "patch": patch,
        "diff_lines": [] if patch is None else [(_diff_class(line), line) for line in patch.lines],
        "packages": packages,
        "package_count": 0 if packages is None else sum(1 for line in packages.lines if line),
    }
    return render(request, "run.html", context)


def _lineage(link: RunLink) -> Lineage:
    """A link as a row: a dataset or model version links to its page (the pages of the
    datasets and models areas: `/datasets/NAME/N`, `/models/NAME/N`)."""
    text = describe_link(link)
    href = None
    if link.kind is LinkKind.DATASET_VERSION:
        found = re.fullmatch(r"([^@/]+)@(\d+)", text)
        href = f"/datasets/{_segment(found[1])}/{found[2]}" if found else None
    elif link.kind is LinkKind.MODEL_VERSION:
        found = re.fullmatch(r"([^@/]+)/(\d+)", link.name)
        text = link.name if found else text
        href = f"/models/{_segment(found[1])}/{found[2]}" if found else None
    direction = "input" if link.direction is Direction.INPUT else "output"
    return Lineage(direction, KIND_LABELS.get(link.kind, link.kind.value), text, href)


def _segment(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _text_artifact(run_id: str, path: str, limit: int) -> TextArtifact | None:
    """The run's system artifact `path` as lines of text, None if the run has none."""
    try:
        _, reader = open_artifact(run_id, path)
    except NotFound:
        return None
    href = artifact_url(run_id, path)
    if reader.size > SCAN_MAX:  # a head is read once the whole blob is verified
        return TextArtifact([], reader.size, True, href)
    head = read_head(reader, limit)
    text = head.decode("utf-8", errors="replace")
    cut = reader.size > len(head)
    if cut and "\n" in text:  # the last line may be cut in the middle
        text = text[: text.rfind("\n")]
    return TextArtifact(text.splitlines(), reader.size, cut, href)


def _diff_class(line: str) -> str:
    """The CSS class of a line of a unified diff."""
    if line.startswith(("+++", "---", "diff ", "index ", "new file", "deleted file")):
        return "meta"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "same"
