"""Every route of the platform server that takes a path parameter refuses every spelling
of the traversal catalogue (tests/server/traversal.py) with 400 JSON, and nothing outside
the store is read or written. The routes are found by walking the app, so a route added
later is covered without touching this test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.server._guards import path_problem
from loopline.server._permissions import all_routes
from server._inprocess import send_raw
from server.traversal import SPELLINGS

SENTINEL = "TOP-SECRET-SENTINEL-7f3a"
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@pytest.fixture
def app(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[Any]:
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    (tmp_path / "secret.txt").write_text(SENTINEL)
    (root / "secret.txt").write_text(SENTINEL)
    opened = open_stores(project_settings(root))
    yield create_app(opened)  # no auth: every route's own logic is reachable
    opened.close()


def routes_with_path_parameters(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route whose path holds a parameter."""
    found = []
    for route in all_routes(app.routes):
        path = getattr(route, "path", "")
        if _PARAM.search(path):
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                found.append((method, path))
    return found


def fill(template: str, param: str, spelling: str) -> str:
    """`template` with `spelling` as `param` and a plain name for every other parameter."""
    return _PARAM.sub(lambda found: spelling if found.group(1) == param else "abc", template)


def files_outside_the_store(tmp_path: Path) -> dict[str, float]:
    store = tmp_path / "proj" / ".loopline"
    return {
        str(path): path.stat().st_mtime
        for path in tmp_path.rglob("*")
        if path.is_file() and store not in path.parents
    }


def test_every_path_parameter_refuses_every_traversal_spelling(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    routes = routes_with_path_parameters(app)
    assert ("DELETE", "/api/v1/tokens/{token_id}") in routes  # the walk sees routes
    before = files_outside_the_store(tmp_path)
    failures = []
    for method, template in routes:
        for param in _PARAM.findall(template):
            for name, spelling in SPELLINGS.items():
                target = fill(template, param, spelling)
                status, _, body = send_raw(app, method, target)
                text = str(body)
                ok = (
                    status == 400
                    and isinstance(body, dict)
                    and body["error"]["type"] == "MalformedRequest"
                    and SENTINEL not in text
                    and "root:" not in text
                )
                if not ok:
                    failures.append(f"{method} {target} ({name}): {status} {text[:200]}")
    assert failures == []
    assert files_outside_the_store(tmp_path) == before


def test_every_spelling_is_refused_by_the_guard_itself() -> None:
    from urllib.parse import unquote

    for name, spelling in SPELLINGS.items():
        target = f"/api/v1/things/{spelling}"
        assert path_problem(target.encode(), unquote(target)) is not None, name


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/whoami",
        "/api/v1/models/churn@champion",
        "/api/v1/models/churn/versions/3",
        "/api/v1/experiments/my%20experiment",
        "/api/v1/datasets/credit:v2",
        "/api/v1/runs/0123abcd/artifacts/model/weights.bin",
        "/api/v1/runs/0123abcd/artifacts/.hidden/a.b.c",
        "/api/v1/names/%C3%BCn%C3%AF",
        "/api/2.0/mlflow/runs/search",
        "/api/v1/tokens/",
    ],
)
def test_ordinary_names_pass_the_guard(target: str) -> None:
    from urllib.parse import unquote

    assert path_problem(target.encode(), unquote(target)) is None
