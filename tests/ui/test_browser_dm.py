"""The dataset and model pages in headless Chromium, served by uvicorn on a real port:
they load with no console error or CSP violation, the profile's histograms are drawn,
the version page's tabs switch and its curves are drawn by uPlot, and stored markup
stays text with no dialog firing. Screenshots go to tests/ui/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ui._fill_dm import XSS_CARD, XSS_COLUMN, XSS_DESCRIPTION, XSS_VALUE, DmProject
from ui.conftest import Browsed
from ui.test_browser import serve
from ui.test_dm_pages_http import PAGES

# one process: one browser, the server and the fixture project made once
pytestmark = pytest.mark.xdist_group("ui-dm")


@pytest.fixture(scope="module")
def dm_url(dm_app: Any) -> Iterator[str]:
    yield from serve(dm_app)


def painted(browsed: Browsed, selector: str) -> int:
    """How many pixels of the canvas under `selector` are not transparent."""
    return int(
        browsed.page.evaluate(
            """(selector) => {
                const canvas = document.querySelector(selector + " canvas");
                const context = canvas.getContext("2d");
                const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
                let count = 0;
                for (let i = 3; i < pixels.length; i += 4) count += pixels[i] > 0;
                return count;
            }""",
            selector,
        )
    )


def test_every_dataset_and_model_page_loads_without_console_errors(
    browse: Browsed, dm_url: str
) -> None:
    for path in PAGES:
        response = browse.open(dm_url + path)
        assert response.status == 200, path
        assert browse.page.evaluate("typeof htmx") == "object", path  # scripts ran (CSP)
        name = path.strip("/").replace("/", "-").split("?")[0]
        browse.screenshot(f"dm-{name}")
    assert browse.errors == [] and browse.dialogs == []


def test_the_profile_draws_a_histogram_per_number_column(browse: Browsed, dm_url: str) -> None:
    browse.open(f"{dm_url}/datasets/credit/1")
    figures = browse.page.locator("article.column-profile figure.histogram svg")
    assert figures.count() == 6  # mean_radius ... worst_area, id, y
    radius = browse.page.locator("article.column-profile", has_text="mean_radius")
    bars = radius.locator("figure.histogram rect")
    assert bars.count() == 20
    boxes = [bars.nth(index).bounding_box() for index in range(20)]
    assert all(box is not None and box["width"] > 0 for box in boxes)
    assert max(box["height"] for box in boxes if box is not None) > 40  # the tallest bin
    colour = bars.first.evaluate("(bar) => getComputedStyle(bar).fill")
    assert colour == "rgb(47, 111, 235)"  # ui.css reached the SVG
    segment = browse.page.locator("article.column-profile", has_text="segment")
    assert segment.locator("figure.values rect").count() == 2
    assert browse.errors == []


def test_the_tabs_switch_and_the_curves_are_drawn(browse: Browsed, dm_url: str) -> None:
    browse.open(f"{dm_url}/models/churn/1")
    assert browse.page.locator("#overview").is_visible()
    assert not browse.page.locator("#evaluation").is_visible()
    browse.page.click("nav.tabs a[href='#evaluation']")
    browse.page.locator("#chart-roc canvas").wait_for()
    assert not browse.page.locator("#overview").is_visible()
    assert browse.page.url.endswith("#evaluation")
    for chart in ("#chart-roc", "#chart-pr", "#chart-calibration"):
        assert painted(browse, chart) > 1000, chart
    assert browse.page.locator("#chart-roc .u-legend").inner_text().count("ROC") == 1
    browse.screenshot("dm-model-evaluation")
    browse.page.click("nav.tabs a[href='#lineage']")
    assert browse.page.locator("#lineage svg.lineage a.node").count() == 4
    browse.screenshot("dm-model-lineage")
    browse.open(f"{dm_url}/models/churn/1#card")  # a tab is a link
    assert browse.page.locator("#card").is_visible()
    assert not browse.page.locator("#lineage").is_visible()
    assert browse.errors == []


def test_the_lineage_boxes_lead_to_their_pages(
    browse: Browsed, dm_url: str, dm_project: DmProject
) -> None:
    browse.open(f"{dm_url}/models/churn/1#lineage")
    browse.page.locator("svg.lineage a.node.run").click()
    browse.page.wait_for_url(f"{dm_url}/runs/{dm_project.run_id}")
    browse.page.go_back()
    browse.page.locator("svg.lineage a.node.dataset").click()
    browse.page.wait_for_url(f"{dm_url}/datasets/credit/1")
    assert browse.errors == []


def test_markup_in_data_descriptions_and_cards_shows_as_text(browse: Browsed, dm_url: str) -> None:
    browse.open(f"{dm_url}/datasets/credit/2")
    failing = browse.page.locator("table.examples.failing td.hot", has_text="alert")
    assert failing.inner_text() == XSS_VALUE
    assert browse.page.locator("article.column-profile h3", has_text="onerror").count() == 1
    assert XSS_COLUMN in browse.page.locator("section.schema").inner_text()
    browse.open(f"{dm_url}/models/churn/1#card")
    assert browse.page.locator("#card p.description").inner_text() == XSS_DESCRIPTION
    assert browse.page.locator("#card ul.considerations li").first.inner_text() == XSS_CARD
    assert browse.page.locator("main script, main img, main b").count() == 0
    assert browse.dialogs == [] and browse.errors == []
