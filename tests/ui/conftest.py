"""Fixtures of the web UI's tests: a filled project, the app over it, and Chromium.

- `ui_project` (per module): a SQLite project with experiments "churn" (60 runs over two
  pages: params, metrics, tags, commits, three statuses), "xss" (a run whose name, param
  and tag are markup) and "empty". Written through the store (no git or pip look-ups),
  so it takes well under a second. The queries the pages make are checked on SQLite and
  PostgreSQL by the store conformance checks (loopline.testing._run_pages).
- `runs_area` (per module, on request): the runs pages' data added to that project, a
  run with a long metric, every kind of artifact, a diff and lineage, and runs to
  compare (tests/ui/_fill_runs.py).
- `ui_client`: Starlette's TestClient over `create_app` on that project, no auth.
- `auth_app`: the same stores behind token auth (a fresh authenticator per module), with
  a reader token, for the login tests.
- `dm_project` (per process), `dm_app`, `dm_client`: datasets and models, from _fill_dm.
- `ops_project`, `ops_client` (per module): another project, with the deployments,
  prediction log, monitoring records and audit events of tests/ui/_fill_ops.py.
- `chromium` (per module): Debian's /usr/bin/chromium driven by Playwright. Where it is
  missing the browser tests skip with the reason, except in CI (CI=true): there they
  fail, since `.ci/run` installs it. Not per session: while Playwright's sync API runs,
  its event loop is the thread's running loop, and a later test's `asyncio.run` (on the
  same xdist worker) would fail; a module keeps its browser tests together (one
  `xdist_group`) and lets the loop go when it ends.
- `browse` (per test): a fresh browser context; opens a URL and records console errors,
  page errors, CSP violations and dialogs (dismissed), and saves screenshots under
  tests/ui/screenshots/ (ignored by git; CI can keep them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from server._inprocess import app_client
from ui._fill_dm import dm_app, dm_client, dm_project  # noqa: F401 - the dataset and model pages'

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_TAG = "</script><script>alert(2)</script>"
XSS_PARAM = '"><svg onload=alert(3)>'
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class UiProject:
    stores: Any
    churn: list[str]  # run ids in the order they were created (run-00 first)
    xss_run: str


def fill(opened: Any) -> UiProject:
    """The experiments of the module docstring, in `opened` (a project's stores)."""
    from loopline.store import CodeVersion

    runs = opened.metadata.runs
    churn = runs.get_or_create_experiment("churn")
    ids, starts, points = [], [], []
    for index in range(60):
        run = runs.create_run(
            churn.id,
            name=f"run-{index:02d}",
            user="ana" if index % 2 else "ben",
            params={"model": ("rf", "lr", "gb")[index % 3], "C": index},
            tags={"team": "risk" if index % 4 else "growth"},
            code=CodeVersion(commit=COMMIT, branch="main", dirty=index % 5 == 0),
        )
        points += [
            (run.id, "auc", 0.5 + index / 200, 0, 1000),
            (run.id, "loss", 1 / (index + 1), 0, 1000),
        ]
        ids.append(run.id)
        starts.append(int(run.start_time.timestamp() * 1000))
    runs.log_metric_points(points)
    for index, (run_id, start_ms) in enumerate(zip(ids, starts, strict=True)):
        status = "FAILED" if index % 7 == 3 else "FINISHED"
        runs.update_run(run_id, status=status, end_time_ms=start_ms + 1000 * (index % 13) + 500)
    xss = runs.get_or_create_experiment("xss")
    hostile = runs.create_run(
        xss.id, name=XSS_NAME, user="eve", params={"payload": XSS_PARAM}, tags={"note": XSS_TAG}
    )
    runs.log_metric_points([(hostile.id, "auc", 0.5, 0, 1000)])
    runs.get_or_create_experiment("empty")
    return UiProject(opened, ids, hostile.id)


@pytest.fixture(scope="module")
def ui_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiProject]:
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings

    root = tmp_path_factory.mktemp("ui-project")
    init_project(root)
    with pytest.MonkeyPatch.context() as env:  # no LOOPLINE_SERVER or the like from a shell
        for name in list(os.environ):
            if name.startswith("LOOPLINE_") and name != "LOOPLINE_TEST_POSTGRES_URL":
                env.delenv(name)
        opened = open_stores(project_settings(root))
    yield fill(opened)
    opened.close()


@pytest.fixture(scope="module")
def runs_area(ui_project: UiProject) -> Any:
    """The runs area's data (tests/ui/_fill_runs.py) added to the module's project."""
    from ui._fill_runs import fill_runs

    return fill_runs(ui_project.stores)


@pytest.fixture(scope="module")
def ui_app(ui_project: UiProject) -> Any:
    from loopline.server import create_app

    return create_app(ui_project.stores)


@pytest.fixture(scope="module")
def ui_client(ui_app: Any) -> Any:
    return app_client(ui_app)


@dataclass(frozen=True)
class AuthApp:
    app: Any
    stores: Any
    token: str
    token_id: str


@pytest.fixture(scope="module")
def auth_app(ui_project: UiProject) -> AuthApp:
    """The project behind token auth; a revoked token is seen within 0.2 s."""
    from loopline.server import create_app
    from loopline.server._auth import TokenAuthenticator

    opened = ui_project.stores
    record, token = opened.metadata.tokens.create("rita", "reader", created_by="root")
    authenticator = TokenAuthenticator(lambda: opened.metadata.tokens, cache_seconds=0.2)
    return AuthApp(create_app(opened, authenticator=authenticator), opened, token, record.id)


# -- the operations pages (deployments, monitoring, audit): tests/ui/_fill_ops.py --------


@pytest.fixture(scope="module")
def ops_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ui._fill_ops import open_ops_project

    yield from open_ops_project(tmp_path_factory.mktemp("ops-project"))


@pytest.fixture(scope="module")
def ops_app(ops_project: Any) -> Any:
    from loopline.server import create_app

    return create_app(ops_project.stores)


@pytest.fixture(scope="module")
def ops_client(ops_app: Any) -> Any:
    return app_client(ops_app)


# -- Chromium -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per test module (see the module docstring)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@dataclass
class Browsed:
    """A browser tab and what it reported: console errors (CSP violations among them),
    uncaught page errors, and dialogs (alert, confirm, prompt), each dismissed."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, url: str) -> Any:
        """Go to `url` and wait for the page (and its scripts) to load; the response."""
        return self.page.goto(url, wait_until="load")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        # caret="initial": hiding the caret would inject a style the page's CSP refuses
        self.page.screenshot(path=str(path), full_page=True, caret="initial")
        return path


@pytest.fixture
def browse(chromium: Any) -> Iterator[Browsed]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    browsed = Browsed(page)

    def on_console(message: Any) -> None:
        if message.type == "error":
            browsed.errors.append(message.text)

    def on_dialog(dialog: Any) -> None:
        browsed.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: browsed.errors.append(f"page error: {error}"))
    page.on("dialog", on_dialog)
    yield browsed
    context.close()
