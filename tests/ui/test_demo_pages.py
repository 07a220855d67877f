"""Every page of the project the demo fills, in Chromium: the demo (examples/demo.py) runs
once into a temporary folder, the UI is served over that project on a real port, and a
crawler follows every link of every page from `/`, as a user clicking through would.
Each page answers 200 and loads with no console error, CSP violation or dialog.

The crawl follows links within this site only, skips what is not a page (downloads, the
static files, the JSON routes, /logout), and visits at most PER_SHAPE pages of each
shape (a path with its names and numbers taken out: `/runs/<id>` is one shape), so that a
hundred runs cost three visits. Screenshots of one page of each shape go to
tests/ui/screenshots/demo-*.png."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import httpx
import pytest

from ui.conftest import Browsed
from ui.test_browser import serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui-demo")]

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
PER_SHAPE = 3
MOST_PAGES = 200
NOT_PAGES = re.compile(r"/(static|api|logout|login)(/|$)|/(raw|download|data|chart)(/|$|\?)")
ID = re.compile(r"[0-9a-f]{8,}|\d+")


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project the demo filled (it runs as `make demo` runs it, in a subprocess)."""
    root = tmp_path_factory.mktemp("demo") / "project"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    done = subprocess.run(
        [sys.executable, str(DEMO), str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "loopline ui" in done.stdout  # the demo ends by naming the UI
    return root


@pytest.fixture(scope="module")
def demo_url(demo_project: Path) -> Iterator[str]:
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("LOOPLINE_"):
                env.delenv(name)
        opened = open_stores(project_settings(demo_project))
    try:
        yield from serve(create_app(opened))
    finally:
        opened.close()


def shape(path: str) -> str:
    """The path with its names and numbers taken out (see the module docstring)."""
    parts = [part for part in path.split("/") if part]
    if len(parts) > 1:
        parts = [
            parts[0],
            *(
                "<>" if ID.fullmatch(part) or index else part
                for index, part in enumerate(parts[1:])
            ),
        ]
    return "/" + "/".join(parts)


def links(page: Any, base: str) -> list[str]:
    """The same-site page links of the page open in `page` (paths with their queries)."""
    found = []
    for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
        url, _ = urldefrag(href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != base or NOT_PAGES.search(parts.path):
            continue
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


def test_every_page_of_the_demo_project_loads_without_errors(
    browse: Browsed, demo_url: str
) -> None:
    queue, seen, shapes = ["/"], {"/"}, Counter[str]()
    visited: list[str] = []
    while queue and len(visited) < MOST_PAGES:
        target = queue.pop(0)
        head = httpx.get(demo_url + target, timeout=30.0)
        assert head.status_code == 200, f"{target}: {head.status_code} {head.text[:300]}"
        if not head.headers.get("content-type", "").startswith("text/html"):
            continue
        response = browse.open(demo_url + target)
        assert response.status == 200, target
        assert browse.errors == [] and browse.dialogs == [], (target, browse.errors)
        visited.append(target)
        page_shape = shape(urlsplit(target).path)
        if shapes[page_shape] == 0:
            browse.screenshot(
                "demo"
                + (
                    page_shape.replace("/", "-").replace("<>", "x")
                    if page_shape != "/"
                    else "-home"
                )
            )
        shapes[page_shape] += 1
        for link in links(browse.page, demo_url):
            link_shape = shape(urlsplit(link).path)
            if link not in seen and shapes[link_shape] + queue_count(queue, link_shape) < PER_SHAPE:
                seen.add(link)
                queue.append(link)
    # the demo's areas all have pages that were reached
    reached = {shape(urlsplit(path).path).split("/")[1] for path in visited if path != "/"}
    assert {
        "experiments",
        "runs",
        "datasets",
        "models",
        "deployments",
        "monitoring",
        "audit",
    } <= reached, reached


def queue_count(queue: list[str], link_shape: str) -> int:
    return sum(shape(urlsplit(path).path) == link_shape for path in queue)
