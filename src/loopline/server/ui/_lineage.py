"""A model version's lineage as a graph drawn on the server: dataset versions -> the run
that read them -> the model version (and the versions exported from it, in order) ->
the deployments serving it.

The graph is laid out here in columns, one per step, and drawn by `templates/
_lineage.html` as SVG: boxes and arrows in attributes, every label text (a run or
dataset name is escaped like any other), each box a link to its page. What the graph
shows comes from the core: `models.model_lineage` (version, source versions, run,
dataset versions) and `serving.deployments_serving`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

BOX_WIDTH = 190
BOX_HEIGHT = 46
COLUMN_GAP = 56
ROW_GAP = 14
PAD = 8
LABEL = 24  # characters of a box's first line; the full text is the box's title
DETAIL = 30  # characters of its second line


@dataclass(frozen=True)
class Node:
    kind: str  # "dataset", "run", "model" or "deployment": the box's CSS class
    label: str
    detail: str
    href: str | None
    title: str  # the full text, shown on hover
    current: bool = False  # the version whose page this is
    x: float = 0
    y: float = 0

    @property
    def shown_label(self) -> str:
        return cut(self.label, LABEL)

    @property
    def shown_detail(self) -> str:
        return cut(self.detail, DETAIL)


@dataclass(frozen=True)
class Edge:
    path: str  # an SVG path from the right of one box to the left of the next


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float
    box_width: int = BOX_WIDTH
    box_height: int = BOX_HEIGHT


def lineage_graph(tree: dict[str, Any], serving: Sequence[tuple[Any, str]]) -> Graph:
    """The graph of `tree` (what `model_lineage` answers for the version) and `serving`
    (the (Deployment, role) pairs `deployments_serving` answers)."""
    chain = [tree]
    while chain[0].get("source"):
        chain.insert(0, chain[0]["source"])
    maker = next((index for index, node in enumerate(chain) if node.get("run")), None)
    columns: list[list[Node]] = []
    links: list[tuple[int, int, int, int]] = []  # (column, row) -> (column, row)
    if maker is not None:  # the run that made the oldest version made by a run
        run = chain[maker]["run"]
        datasets = [dataset_node(found) for found in run.get("datasets") or []]
        if datasets:
            columns.append(datasets)
        columns.append([run_node(run)])
        here = len(columns) - 1
        links += [(here - 1, row, here, 0) for row in range(len(datasets))]
        links.append((here, 0, here + 1 + maker, 0))
    for index, version in enumerate(chain):
        columns.append([model_node(version, current=version is tree)])
        if index > 0:  # exported from the version before it
            links.append((len(columns) - 2, 0, len(columns) - 1, 0))
    if serving:
        columns.append([deployment_node(deployment, role) for deployment, role in serving])
        here = len(columns) - 1
        links += [(here - 1, 0, here, row) for row in range(len(serving))]
    return layout(columns, links)


def layout(columns: list[list[Node]], links: list[tuple[int, int, int, int]]) -> Graph:
    """Columns side by side, each centred on the tallest; arrows as cubic curves."""
    tallest = max(len(column) for column in columns)
    height = 2 * PAD + tallest * BOX_HEIGHT + (tallest - 1) * ROW_GAP
    placed: list[list[Node]] = []
    for index, column in enumerate(columns):
        used = len(column) * BOX_HEIGHT + (len(column) - 1) * ROW_GAP
        top = (height - used) / 2
        x = PAD + index * (BOX_WIDTH + COLUMN_GAP)
        placed.append(
            [_at(node, x, top + row * (BOX_HEIGHT + ROW_GAP)) for row, node in enumerate(column)]
        )
    edges = []
    for from_column, from_row, to_column, to_row in links:
        start, end = placed[from_column][from_row], placed[to_column][to_row]
        x1, y1 = start.x + BOX_WIDTH, start.y + BOX_HEIGHT / 2
        x2, y2 = end.x - 4, end.y + BOX_HEIGHT / 2  # the arrow head ends at the box
        middle = (x1 + x2) / 2
        edges.append(Edge(f"M{x1:g},{y1:g} C{middle:g},{y1:g} {middle:g},{y2:g} {x2:g},{y2:g}"))
    width = 2 * PAD + len(columns) * BOX_WIDTH + (len(columns) - 1) * COLUMN_GAP
    nodes = tuple(node for column in placed for node in column)
    return Graph(nodes, tuple(edges), width, height)


def dataset_node(found: dict[str, Any]) -> Node:
    ref = str(found.get("ref", ""))
    name, _, version = ref.rpartition("@")
    if found.get("missing") or not name or not version.isdigit():
        return Node("dataset missing", ref, "dataset version not found", None, ref)
    detail = " · ".join(
        part
        for part in (
            f"{found['rows']:,} rows" if found.get("rows") is not None else "",
            f"manifest {str(found.get('manifest', ''))[:8]}",
        )
        if part
    )
    href = f"/datasets/{quote(name, safe='')}/{version}"
    return Node("dataset", ref, detail, href, f"dataset {ref}")


def run_node(run: dict[str, Any]) -> Node:
    run_id = str(run.get("id", ""))
    if run.get("missing"):
        return Node("run missing", run_id[:8], "run not found", None, f"run {run_id}")
    name = str(run.get("name") or run_id[:8])
    detail = f"{run.get('experiment', '')} · {str(run.get('status', '')).lower()}"
    return Node("run", name, detail, f"/runs/{quote(run_id, safe='')}", f"run {name} ({run_id})")


def model_node(version: dict[str, Any], *, current: bool) -> Node:
    ref = str(version.get("ref", ""))
    name, _, number = ref.rpartition("/")
    detail = f"{version.get('flavor', '')} · {version.get('status', '')}"
    href = f"/models/{quote(name, safe='')}/{number}"
    return Node("model", ref, detail, href, f"model version {ref}", current=current)


def deployment_node(deployment: Any, role: str) -> Node:
    spec = deployment.spec
    detail = f"{role} at {spec.weight:g} %" if role == "canary" else role
    href = f"/deployments/{quote(deployment.name, safe='')}"
    title = f"deployment {deployment.name}: {spec.describe()}"
    return Node("deployment", deployment.name, detail, href, title)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _at(node: Node, x: float, y: float) -> Node:
    from dataclasses import replace

    return replace(node, x=round(x, 2), y=round(y, 2))
