"""The operations pages in headless Chromium, against the app served by uvicorn on a real
port (the project of tests/ui/_fill_ops.py): every page loads with no console error or
CSP violation, the traffic and drift charts are drawn, the audit filter narrows the
table through htmx, stored markup stays text with no dialog, and a stored report's
script runs neither in its sandboxed frame nor when its page is opened alone.
Screenshots go to tests/ui/screenshots/ops-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ui.conftest import Browsed
from ui.test_browser import serve

# one test process for the module: one browser, and the server starts once
pytestmark = pytest.mark.xdist_group("ui-browser-ops")

# what Chromium says when a sandboxed page's script is refused: the sandbox working
SANDBOXED = re.compile(r"Blocked script execution in '[^']*' because the document's frame is sandb")

PAINTED = """(selector) => Array.from(document.querySelectorAll(selector)).map((canvas) => {
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let painted = 0;
    for (let i = 3; i < pixels.data.length; i += 4) painted += pixels.data[i] > 0;
    return painted;
})"""


@pytest.fixture(scope="module")
def ops_url(ops_app: Any) -> Iterator[str]:
    yield from serve(ops_app)


def test_every_operations_page_loads_without_console_errors(
    browse: Browsed, ops_url: str, ops_project: Any
) -> None:
    pages = {
        "deployments": "/deployments",
        "deployment": "/deployments/churn",
        "deployment-1h": "/deployments/churn?window=1h",
        "deployment-quiet": "/deployments/fraud",
        "monitoring": "/monitoring",
        "deployment-monitoring": "/deployments/churn/monitoring",
        "deployment-monitoring-empty": "/deployments/fraud/monitoring",
        "audit": "/audit",
        "audit-filtered": "/audit?user=ben&object=churn",
    }
    for name, path in pages.items():
        response = browse.open(ops_url + path)
        assert response.status == 200, path
        assert browse.page.evaluate("typeof htmx") == "object", path  # scripts ran (CSP)
        browse.screenshot(f"ops-{name}")
    assert browse.errors == [] and browse.dialogs == []


def test_the_traffic_and_drift_charts_are_drawn(browse: Browsed, ops_url: str) -> None:
    browse.open(f"{ops_url}/deployments/churn?window=6h")
    browse.page.locator("figure.chart.drawn canvas").nth(3).wait_for()
    painted = browse.page.evaluate(PAINTED, "figure.chart canvas")
    assert len(painted) == 4 and all(count > 500 for count in painted), painted
    legend = browse.page.locator("#chart-requests .u-legend").inner_text()
    assert "churn/1" in legend and "churn/2" in legend
    browse.open(f"{ops_url}/deployments/churn/monitoring")
    browse.page.locator("figure.chart.drawn canvas").nth(1).wait_for()
    painted = browse.page.evaluate(PAINTED, "figure.chart canvas")
    assert len(painted) == 2 and all(count > 200 for count in painted), painted
    browse.screenshot("ops-drift-charts")
    assert browse.errors == []


def test_the_audit_filter_narrows_the_table(browse: Browsed, ops_url: str) -> None:
    browse.open(f"{ops_url}/audit")
    count = browse.page.locator("section.audit p.count")
    assert count.inner_text().startswith("Events 1–50 of 63")
    browse.page.fill("input[name=user]", "ana")
    browse.page.press("input[name=user]", "Enter")
    browse.page.locator("p.count", has_text="of 4 matching").wait_for()
    users = browse.page.locator("table.audit td.who").all_inner_texts()
    assert users == ["ana"] * 4
    assert "user=ana" in browse.page.url  # pushed: a link to this table
    browse.page.locator("table.audit td.action a", has_text="model_version.approve").first.click()
    browse.page.locator("p.count", has_text="Events 1–1 of 1 matching").wait_for()
    assert "action=model_version.approve" in browse.page.url
    browse.page.click("text=Clear")
    browse.page.locator("p.count", has_text="of 63").wait_for()
    browse.page.click("a[rel=next]")
    browse.page.locator("p.count", has_text="Events 51–63 of 63").wait_for()
    browse.screenshot("ops-audit-page-2")
    assert browse.errors == []


def test_markup_in_reasons_users_and_alerts_shows_as_text_and_runs_nothing(
    browse: Browsed, ops_url: str
) -> None:
    from ui._fill_ops import XSS_ALERT, XSS_REASON, XSS_USER

    browse.open(f"{ops_url}/deployments/churn")
    assert browse.page.locator("table.revisions td.reason").first.inner_text() == XSS_REASON
    browse.open(f"{ops_url}/deployments/churn/monitoring")
    assert XSS_ALERT in browse.page.locator("table.alerts td.summary").all_inner_texts()
    browse.open(f"{ops_url}/audit")
    assert XSS_USER in browse.page.locator("table.audit td.who").all_inner_texts()
    assert browse.page.locator("main img, main script, table svg").count() == 0
    assert browse.dialogs == [] and browse.errors == []


def test_a_reports_script_runs_neither_in_its_frame_nor_alone(
    browse: Browsed, ops_url: str, ops_project: Any
) -> None:
    report = ops_project.html_report
    browse.open(f"{ops_url}/monitoring/reports/{report}")
    frame = browse.page.frame_locator("iframe.report")
    assert frame.locator("h1").inner_text() == "Report 2"  # the stored page shows
    title = browse.page.title()
    assert title.startswith("Report ") and title != "escaped"
    browse.screenshot("ops-report")
    browse.open(f"{ops_url}/monitoring/reports/{report}/page")  # alone: its CSP sandboxes it
    assert browse.page.title() == "report 2"  # the script would have renamed it "ran"
    assert browse.errors and all(SANDBOXED.search(error) for error in browse.errors), browse.errors
    assert browse.dialogs == []
