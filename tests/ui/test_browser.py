"""The UI in headless Chromium, against the app served by uvicorn on a real port: pages
load with their scripts and no console error or CSP violation, the runs table filters,
sorts and pages through htmx (and without JavaScript), stored markup stays text with no
dialog firing, and the login form of a server with auth. Screenshots of the main pages
go to tests/ui/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fixtures.waiting import eventually
from ui.conftest import XSS_NAME, XSS_TAG, AuthApp, Browsed, UiProject

# one test process for the module: one browser, and the servers start once
pytestmark = pytest.mark.xdist_group("ui-browser")

FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of 40[01]")


def serve(app: Any) -> Iterator[str]:
    from fixtures.serving import live_server

    with live_server(app, wait=False) as url:
        eventually(
            lambda: httpx.get(f"{url}/api/v1/health", timeout=2.0).status_code == 200,
            timeout=30.0,
            message=f"the UI at {url} did not answer",
            ignoring=(httpx.TransportError,),
        )
        yield url


@pytest.fixture(scope="module")
def ui_url(ui_app: Any) -> Iterator[str]:
    yield from serve(ui_app)


@pytest.fixture(scope="module")
def auth_url(auth_app: AuthApp) -> Iterator[str]:
    yield from serve(auth_app.app)


def cells(browsed: Browsed, index: int) -> list[str]:
    """The texts of the runs table's column `index` (1-based, as CSS counts)."""
    locator = browsed.page.locator(f"table.runs-grid tbody tr td:nth-child({index})")
    return [text.strip() for text in locator.all_inner_texts()]


def count_says(browsed: Browsed, text: str) -> None:
    """Wait until the table's count line says `text` (htmx swapped the table in)."""
    browsed.page.locator("p.count", has_text=text).wait_for()


def test_every_page_loads_without_console_errors(
    browse: Browsed, ui_url: str, ui_project: UiProject
) -> None:
    pages = {
        "experiments": "/",
        "runs-table": "/experiments/churn?col=metrics.auc&col=params.model&col=tags.team",
        "run": f"/runs/{ui_project.churn[12]}",
        "runs-table-xss": "/experiments/xss?col=tags.note&col=params.payload",
        "run-xss": f"/runs/{ui_project.xss_run}",
        "runs-table-empty": "/experiments/empty",
    }
    for name, path in pages.items():
        response = browse.open(ui_url + path)
        assert response.status == 200, path
        assert browse.page.evaluate("typeof htmx") == "object", path  # scripts ran (CSP)
        browse.screenshot(name)
    assert browse.errors == [] and browse.dialogs == []


def test_the_filter_narrows_the_table(browse: Browsed, ui_url: str) -> None:
    browse.open(f"{ui_url}/experiments/churn")
    count_says(browse, "Runs 1–50 of 60")
    browse.page.fill("#filter", "params.model = 'rf' and tags.team = 'risk'")
    browse.page.press("#filter", "Enter")
    count_says(browse, "of 15 matching")
    assert set(cells(browse, 10)) == {"rf"}  # 6 run columns, auc, loss, C, model
    assert "filter=params.model" in browse.page.url  # pushed: a link to this table
    assert browse.errors == []


def test_a_filter_that_does_not_parse_shows_the_error(browse: Browsed, ui_url: str) -> None:
    browse.open(f"{ui_url}/experiments/churn")
    browse.page.fill("#filter", "metrics.auc >> 1")
    browse.page.press("#filter", "Enter")
    error = browse.page.locator("p.error")
    error.wait_for()
    assert error.inner_text().startswith("invalid filter at position 12")
    assert all(FAILED_LOAD.search(message) for message in browse.errors), browse.errors


def test_clicking_a_column_sorts_by_it_both_ways(browse: Browsed, ui_url: str) -> None:
    browse.open(f"{ui_url}/experiments/churn")
    header = browse.page.locator("th.metric", has_text="auc").locator("a")
    header.click()
    browse.page.locator("th.metric[aria-sort=descending]").wait_for()
    values = [float(text) for text in cells(browse, 7)]
    assert values == sorted(values, reverse=True) and values[0] == 0.795
    browse.page.locator("th.metric", has_text="auc").locator("a").click()
    browse.page.locator("th.metric[aria-sort=ascending]").wait_for()
    values = [float(text) for text in cells(browse, 7)]
    assert values == sorted(values) and values[0] == 0.5
    browse.page.locator("th", has_text="Name").locator("a").click()
    browse.page.locator("th.attribute[aria-sort=ascending]", has_text="Name").wait_for()
    assert cells(browse, 1)[:3] == ["run-00", "run-01", "run-02"]
    assert browse.errors == []


def test_the_pager_and_the_column_picker(browse: Browsed, ui_url: str) -> None:
    browse.open(f"{ui_url}/experiments/churn")
    browse.page.click("a[rel=next]")
    count_says(browse, "Runs 51–60 of 60")
    assert browse.page.url.endswith("/experiments/churn?page=2")
    browse.page.go_back()  # no history cache: the page is asked again
    count_says(browse, "Runs 1–50 of 60")
    browse.page.click("details.picker summary")
    browse.page.check('input[name=col][value="tags.team"]')
    browse.page.uncheck('input[name=col][value="params.C"]')
    browse.screenshot("runs-table-picker")
    browse.page.click("text=Show these columns")
    browse.page.locator("th.tag", has_text="team").wait_for()
    assert browse.page.locator("th.param", has_text="C").count() == 0
    assert "col=tags.team" in browse.page.url and browse.errors == []
    browse.screenshot("runs-table-picked")


def test_the_table_sorts_and_pages_without_javascript(chromium: Any, ui_url: str) -> None:
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{ui_url}/experiments/churn")
        page.locator("th.metric", has_text="auc").locator("a").click()
        page.wait_for_url(re.compile(r"order=metrics\.auc%20desc"))
        first = page.locator("table.runs-grid tbody tr td:nth-child(1)").first.inner_text()
        assert first.strip() == "run-59"
        page.click("a[rel=next]")
        page.locator("p.count", has_text="Runs 51–60 of 60").wait_for()
    finally:
        context.close()


def test_markup_in_names_and_tags_shows_as_text_and_runs_nothing(
    browse: Browsed, ui_url: str, ui_project: UiProject
) -> None:
    browse.open(f"{ui_url}/experiments/xss?col=tags.note")
    name = browse.page.locator("td.name a")
    assert name.inner_text() == XSS_NAME and name.locator("img").count() == 0
    assert cells(browse, 7) == [XSS_TAG]
    browse.open(f"{ui_url}/runs/{ui_project.xss_run}")
    assert browse.page.locator("h1").inner_text().startswith(XSS_NAME)
    assert browse.page.locator("main img, main svg, main script").count() == 0
    assert browse.dialogs == [] and browse.errors == []


def test_the_login_refuses_a_bad_token_and_takes_a_good_one(
    browse: Browsed, auth_url: str, auth_app: AuthApp
) -> None:
    browse.open(f"{auth_url}/experiments/churn")
    assert "/login?next=%2Fexperiments%2Fchurn" in browse.page.url
    browse.screenshot("login")
    browse.page.fill("#token", "llt_000000000000_" + "x" * 43)
    with browse.page.expect_navigation() as refused:
        browse.page.click("button[type=submit]")
    assert refused.value.status == 401
    assert "the token is unknown" in browse.page.locator("p.error").inner_text()
    browse.page.fill("#token", auth_app.token)
    browse.page.click("button[type=submit]")
    count_says(browse, "Runs 1–50 of 60")
    assert browse.page.url == f"{auth_url}/experiments/churn"
    assert "rita · reader" in browse.page.locator("form.signout").inner_text()
    browse.page.click("text=Log out")
    browse.page.wait_for_url(f"{auth_url}/login")
    assert [e for e in browse.errors if not FAILED_LOAD.search(e)] == []


def test_the_vendored_uplot_draws_a_chart_under_the_pages_csp(browse: Browsed, ui_url: str) -> None:
    """uPlot styles its elements through the CSSOM, which `style-src 'self'` allows: a
    chart drawn on one of our pages raises no violation (the UI's charts rely on it)."""
    from loopline.server.ui.static import static_url

    browse.open(f"{ui_url}/experiments/empty")
    browse.page.add_style_tag(url=static_url("vendor/uPlot.min.css"))
    browse.page.add_script_tag(url=static_url("vendor/uPlot.iife.min.js"))
    drawn = browse.page.evaluate(
        """async () => {
            const steps = Array.from({length: 1000}, (_, i) => i);
            const chart = new uPlot(
                {width: 600, height: 300, series: [{}, {label: "loss", stroke: "#2f6feb"}]},
                [steps, steps.map((i) => Math.exp(-i / 200))],
                document.querySelector("main"),
            );
            await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
            const canvas = chart.root.querySelector("canvas");
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let painted = 0;
            for (let i = 3; i < pixels.data.length; i += 4) painted += pixels.data[i] > 0;
            return {width: canvas.width, painted: painted};
        }"""
    )
    assert drawn["width"] >= 600 and drawn["painted"] > 1000
    browse.screenshot("uplot-chart")
    assert browse.errors == []
