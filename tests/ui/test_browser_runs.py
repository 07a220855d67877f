"""The runs pages in headless Chromium, against the app served by uvicorn on a real port:
every page loads without a console error or CSP violation; a metric chart's canvas is
drawn (and how long after navigation, printed), zooms by a drag into finer points and
back, switches to a time axis; the compare page highlights differing params, draws the
parallel coordinates and one curve per run; an HTML report shows in its sandbox without
its script; the runs table's ticks open the compare page, with and without JavaScript.
Screenshots go to tests/ui/screenshots/."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from ui._fill_runs import LONG_POINTS, START_MS, XSS_PARAM, RunsArea
from ui.conftest import Browsed
from ui.test_browser import serve

# one test process for the module: one browser, and the server starts once
pytestmark = pytest.mark.xdist_group("ui-browser-runs")

SANDBOXED = "because the document's frame is sandboxed and the 'allow-scripts' permission"


@pytest.fixture(scope="module")
def runs_url(ui_app: Any, runs_area: RunsArea) -> Iterator[str]:
    yield from serve(ui_app)


def drawn(browsed: Browsed, key: str) -> dict[str, Any]:
    """Wait for the chart of `key` to be drawn; its series, points and painted pixels."""
    figure = f'figure.chart[data-key="{key}"]'
    browsed.page.locator(f"{figure}[data-state=drawn]").wait_for()
    found: dict[str, Any] = browsed.page.evaluate(
        """(selector) => {
            const figure = document.querySelector(selector);
            const canvas = figure.querySelector("canvas");
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let painted = 0;
            for (let i = 3; i < pixels.data.length; i += 4) painted += pixels.data[i] > 0;
            return {
                series: figure._chart.series.length - 1, points: Number(figure.dataset.points),
                painted: painted, drawnMs: Number(figure.dataset.drawnMs),
                zoomed: figure.dataset.zoomed,
                note: figure.querySelector(".chart-note").textContent,
            };
        }""",
        figure,
    )
    return found


def test_every_runs_page_loads_without_console_errors(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    run = f"/runs/{runs_area.long_run}"
    pages = {
        "run-charts": run,
        "compare": "/compare?runs=" + ",".join(runs_area.compared),
        "runs-table-compare": "/experiments/charts",
    }
    for kind, path in runs_area.artifacts.items():
        pages[f"artifact-{kind}"] = f"{run}/artifact?path={quote(path, safe='')}"
    for name, path in pages.items():
        response = browse.open(runs_url + path)
        assert response.status == 200, path
        assert browse.page.evaluate("typeof htmx") == "object", path  # scripts ran (CSP)
        browse.screenshot(name)
    # the report's own script is blocked by its sandbox, which Chromium reports
    assert [error for error in browse.errors if SANDBOXED not in error] == []
    assert browse.dialogs == []


def test_a_chart_of_a_long_metric_is_drawn_downsampled(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    browse.open(f"{runs_url}/runs/{runs_area.long_run}")
    loss = drawn(browse, "loss")
    assert loss["series"] == 1 and loss["painted"] > 2000
    assert 100 < loss["points"] < LONG_POINTS / 10  # at most two per pixel column
    assert f"{LONG_POINTS - 1:,} points" in loss["note"] and "drawn" in loss["note"]
    print(f"\nnavigation to the loss chart drawn: {loss['drawnMs']} ms (goal <= 1000 ms)")
    assert drawn(browse, "acc")["points"] == 3
    browse.screenshot("run-chart")
    assert browse.errors == []


def test_dragging_across_a_chart_zooms_into_finer_points_and_back(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    browse.open(f"{runs_url}/runs/{runs_area.long_run}")
    whole = drawn(browse, "loss")
    over = browse.page.locator('figure.chart[data-key="loss"] .u-over')
    box = over.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    with browse.page.expect_response(lambda answer: "start=" in answer.url) as zoom:
        browse.page.mouse.move(box["x"] + box["width"] * 0.30, y)
        browse.page.mouse.down()
        browse.page.mouse.move(box["x"] + box["width"] * 0.32, y, steps=5)
        browse.page.mouse.up()
    assert zoom.value.status == 200
    browse.page.locator('figure.chart[data-key="loss"][data-zoomed=true]').wait_for()
    near = drawn(browse, "loss")
    xs = browse.page.evaluate(
        "document.querySelector('figure.chart[data-key=\"loss\"]')._chart.data[0]"
    )
    assert near["points"] < whole["points"] and "zoomed in" in near["note"]
    assert xs[-1] - xs[0] < LONG_POINTS * 0.1 and all(b - a == 1 for a, b in itertools.pairwise(xs))
    browse.screenshot("run-chart-zoomed")
    browse.page.locator('figure.chart[data-key="loss"] button.reset').click()
    browse.page.locator('figure.chart[data-key="loss"][data-zoomed=false]').wait_for()
    assert drawn(browse, "loss")["points"] == whole["points"]
    assert browse.errors == []


def test_the_time_axis_redraws_every_chart(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    browse.open(f"{runs_url}/runs/{runs_area.long_run}")
    drawn(browse, "loss")
    with browse.page.expect_response(lambda answer: "x=time" in answer.url):
        browse.page.check('fieldset.axis input[value="time"]')
    browse.page.wait_for_function(
        "() => document.querySelector('figure.chart[data-key=\"loss\"]')._chart.scales.x.time"
    )
    assert drawn(browse, "loss")["painted"] > 2000
    low = browse.page.evaluate(
        "() => document.querySelector('figure.chart[data-key=\"loss\"]')._chart.scales.x.min"
    )
    assert low == pytest.approx(START_MS / 1000, abs=1)  # epoch seconds, drawn as dates
    assert browse.errors == []


def test_compare_highlights_differences_and_draws_every_run(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    browse.open(f"{runs_url}/compare?runs=" + ",".join(runs_area.compared))
    lr = browse.page.locator('tr[data-axis="params.lr"]')
    model = browse.page.locator('tr[data-axis="params.model"]')
    assert "differs" in (lr.get_attribute("class") or "")
    highlight = (
        "getComputedStyle(document.querySelector('tr[data-axis=\"params.%s\"] td')).backgroundColor"
    )
    assert browse.page.evaluate(highlight % "lr") != browse.page.evaluate(highlight % "model")
    note = browse.page.locator('tr[data-axis="params.note"] td').nth(2)
    assert note.inner_text() == XSS_PARAM and note.locator("img").count() == 0
    canvas = browse.page.locator("canvas.parallel")
    assert (
        canvas.get_attribute("data-lines") == "3"
        and int(canvas.get_attribute("data-axes") or 0) >= 3
    )
    assert drawn(browse, "loss")["series"] == 3
    browse.screenshot("compare-drawn")
    rows = browse.page.locator("table.diff tbody tr")
    visible = [row.is_visible() for row in rows.all()]
    browse.page.check("#only-diff")
    assert model.is_hidden() and lr.is_visible()
    assert sum(row.is_visible() for row in rows.all()) < sum(visible)
    assert browse.errors == [] and browse.dialogs == []


def test_an_html_report_shows_in_its_sandbox_without_running_its_script(
    browse: Browsed, runs_url: str, runs_area: RunsArea
) -> None:
    browse.page.add_init_script(  # before the page: what the framed report posts to it
        "window.heard = []; addEventListener('message', (e) => heard.push(String(e.data)));"
    )
    path = quote(runs_area.artifacts["html"], safe="")
    browse.open(f"{runs_url}/runs/{runs_area.long_run}/artifact?path={path}")
    frame = browse.page.frame_locator("iframe.report")
    heading = frame.locator("h1#title")
    assert heading.inner_text() == "Evaluation report"
    assert heading.evaluate("(h1) => getComputedStyle(h1).color") == "rgb(0, 128, 0)"  # its style
    report = next(f for f in browse.page.frames if "artifact/report" in f.url)
    assert report.evaluate("document.title") == ""  # its script would have set "ran"
    assert report.evaluate("origin") == "null"  # an opaque origin: none of ours
    assert browse.page.evaluate("() => window.heard") == [] and browse.dialogs == []
    assert browse.errors and all(SANDBOXED in error for error in browse.errors)


def test_ticked_runs_open_the_compare_page_with_and_without_javascript(
    browse: Browsed, chromium: Any, runs_url: str, runs_area: RunsArea
) -> None:
    browse.open(f"{runs_url}/experiments/charts")
    for run_id in runs_area.compared[:2]:
        browse.page.check(f'input.pick[value="{run_id}"]')
    browse.page.click("text=Compare ticked runs")
    browse.page.locator("h1", has_text="Compare 2 runs").wait_for()
    assert browse.errors == []
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{runs_url}/experiments/charts")
        for run_id in runs_area.compared:
            page.check(f'input.pick[value="{run_id}"]')
        page.click("text=Compare ticked runs")
        page.locator("h1", has_text="Compare 3 runs").wait_for()
        page.check("#only-diff")
        page.click("form.diff-options button.apply")
        page.wait_for_url("**only=diff**")
        assert page.locator('tr[data-axis="params.model"]').is_hidden()
    finally:
        context.close()
