"""The operations pages over HTTP (in-process), on the project of tests/ui/_fill_ops.py:
deployments (split, revisions with who and why, traffic from the prediction log),
monitoring (drift over time, alerts, the retrain loop's chain, a report sandboxed in its
frame) and the audit table (filters, pages); stored markup shown as text; unknown names
404 pages, malformed input 400."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server._inprocess import send_raw
from ui._fill_ops import LOOP_ID, REPORT_SCRIPT, RUN_ID, XSS_ALERT, XSS_REASON, XSS_USER
from ui.test_pages_http import inline_code, page

AUDIT = {"HX-Request": "true", "HX-Target": "audit"}


def audit_rows(html: str) -> list[tuple[str, str]]:
    """(user, action) of each row of the audit table, as shown."""
    return re.findall(
        r'<td class="who"><a [^>]*>([^<]*)</a></td>\s*<td class="action"><a [^>]*>([^<]*)</a>',
        html,
    )


def test_the_deployments_list_shows_versions_split_and_open_alerts(ops_client: Any) -> None:
    html = page(ops_client, "/deployments")
    assert 'href="/deployments/churn">churn</a>' in html
    assert "churn/1 + canary churn/2 at 20%" in html and "fraud/3" in html
    assert re.search(r'<rect class="share share-0 role-stable" x="0.0" y="0" width="80.0"', html)
    assert re.search(r'role-canary" x="80.0" y="0" width="20.0"', html)
    assert 'class="alerts" href="/deployments/churn/monitoring">1</a>' in html  # drift open
    assert html.count("no server") == 2


def test_a_deployment_page_shows_its_revisions_with_who_why_and_what_changed(
    ops_client: Any,
) -> None:
    html = page(ops_client, "/deployments/churn")
    revisions = html.split('<table class="grid revisions">', 1)[1]
    rows = re.findall(r"<tr( class=\"current\")?>\s*<td class=\"number\">(\d)</td>", revisions)
    assert rows == [(' class="current"', "2"), ("", "1")]
    assert '<td class="who">ben</td>' in revisions and '<td class="who">ana</td>' in revisions
    assert "canary churn/2 at 20%" in revisions and "serves churn/1" in revisions
    assert '<a href="/models/churn/2">churn/2</a> <span class="muted">canary · 20%' in html


def test_the_traffic_charts_hold_the_logs_figures(ops_client: Any, ops_project: Any) -> None:
    html = page(ops_client, "/deployments/churn?window=6h")
    assert f"300 requests ({ops_project.rows} rows)" in html
    assert "50.0% of the rows have feedback" in html
    charts = re.findall(r"<figure class=\"chart\" id=\"chart-(\w+)\" data-chart='([^']*)'>", html)
    assert [name for name, _ in charts] == ["requests", "latency", "errors", "coverage"]
    import html as markup
    import json

    requests = json.loads(markup.unescape(charts[0][1]))
    assert len(requests["x"]) == 72 and requests["x"][1] - requests["x"][0] == 300
    by_label = {s["label"]: s["values"] for s in requests["series"]}
    assert sum(by_label["all"]) == 300 and sum(by_label["churn/2"]) == 60
    errors = json.loads(markup.unescape(charts[2][1]))
    assert sum(errors["series"][1]["values"]) == 6  # index % 50 == 7
    assert page(ops_client, "/deployments/churn?window=1h").count("<figure") == 4
    quiet = page(ops_client, "/deployments/fraud")
    assert "No logged requests in this window." in quiet and "<figure" not in quiet


def test_a_young_deployment_opens_on_the_window_that_holds_its_life(ops_client: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from loopline.server.ui.deployments import default_window

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    ages = {
        timedelta(minutes=5): "1h",
        timedelta(hours=1): "1h",
        timedelta(hours=2): "6h",
        timedelta(hours=20): "24h",
        timedelta(days=3): "24h",  # an older one: a day, not its whole life
        timedelta(days=90): "24h",
    }
    for age, window in ages.items():
        assert default_window(now - age, now) == window, age
    assert default_window((now - timedelta(hours=2)).replace(tzinfo=None), now) == "6h"
    # the fixture's deployments were created moments ago
    html = page(ops_client, "/deployments/churn")
    assert '<a href="/deployments/churn?window=1h" aria-current="page">1h</a>' in html


def test_drift_over_time_alerts_and_the_loops_chain_on_the_monitoring_page(
    ops_client: Any, ops_project: Any
) -> None:
    html = page(ops_client, "/deployments/churn/monitoring")
    stable = html.split("<h3>churn/1", 1)[1].split("</table>", 1)[0]
    x2 = stable.split('scope="row">x2</th>', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="psi ([^"]*)"[^>]*>([^<]*)</td>', x2) == [
        ("level-0", "0.05"), ("level-1 drifted", "0.2"), ("level-2 drifted", "0.35"),
    ]  # fmt: skip
    assert html.index("<h3>churn/1") < html.index("<h3>churn/2")  # stable first
    assert html.count('data-chart=\'{"id": "drift-') == 2
    for report in ops_project.reports:
        assert f'href="/monitoring/reports/{report}"' in html
    assert re.search(r"<td>drift</td>\s*<td><span class=\"status status-open\">open", html)
    assert re.search(r"<td>integrity</td>\s*<td><span class=\"status status-resolved\">", html)
    loop = html.split('<section class="loop">', 1)[1].split("</section>", 1)[0]
    assert f"<code>{LOOP_ID[:8]}</code>" in loop and "status-canary" in loop
    assert re.findall(r'<span class="step">(\w+)</span>', loop) == [
        "started", "dataset", "trained", "gates", "canary",
    ]  # fmt: skip
    for link in ("/datasets/churn-train/2", "/models/churn/2", "/models/churn/1"):
        assert f'href="{link}"' in loop
    assert f'href="/runs/{RUN_ID}"' in loop and "trigger=alert (drift failed)" in loop
    assert 'deployment.update</span> by <span class="who">ben' in html
    empty = page(ops_client, "/deployments/fraud/monitoring")
    assert "No stored reports yet" in empty and "No retrain loops" in empty


def test_the_monitoring_overview_lists_verdicts_and_open_alerts(ops_client: Any) -> None:
    html = page(ops_client, "/monitoring")
    row = html.split('href="/deployments/churn/monitoring">churn</a>', 1)[1].split("</tr>", 1)[0]
    assert "status-failed" in row and '<td class="text wrap">x2</td>' in row
    assert "status-canary" in row  # the retrain loop's canary runs
    assert "no report yet" in html.split('href="/deployments/fraud/monitoring">', 1)[1]
    open_alerts = html.split("<h2>Open alerts</h2>", 1)[1]
    assert "<td>drift</td>" in open_alerts and "integrity" not in open_alerts


def test_a_report_is_framed_sandboxed_and_its_page_sandboxes_itself(
    ops_client: Any, ops_project: Any
) -> None:
    report = ops_project.html_report
    html = page(ops_client, f"/monitoring/reports/{report}")
    frame = re.findall(r"<iframe [^>]*>", html)
    assert frame == [
        f'<iframe class="report" sandbox src="/monitoring/reports/{report}/page" '
        'title="the report\'s page">'
    ]
    stored = ops_client.get(f"/monitoring/reports/{report}/page")
    assert stored.status_code == 200 and REPORT_SCRIPT in stored.text  # as stored, but:
    policy = stored.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "script-src" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert stored.headers["x-frame-options"] == "SAMEORIGIN"
    assert stored.headers["content-disposition"].startswith("inline; filename=")
    assert stored.headers["x-content-type-options"] == "nosniff"


def test_the_audit_table_filters_by_user_action_object_and_type(ops_client: Any) -> None:
    everything = page(ops_client, "/audit")
    assert "Events 1–50 of 63, newest first" in everything
    assert audit_rows(everything)[0] == ("ci", "token.use")
    assert 'rel="next" href="/audit?page=2"' in everything
    older = page(ops_client, "/audit?page=2")
    assert "Events 51–63 of 63" in older and audit_rows(older)[-1] == ("ana", "deployment.create")
    by_ana = page(ops_client, "/audit?user=ana")
    assert "of 4 matching" in by_ana and {u for u, _ in audit_rows(by_ana)} == {"ana"}
    approvals = page(ops_client, "/audit?action=model_version.approve&user=ben")
    assert audit_rows(approvals) == [("ben", "model_version.approve")]
    under = page(ops_client, "/audit?object=churn&type=deployment")
    assert [a for _, a in audit_rows(under)] == ["deployment.update", "deployment.create"]
    versions = page(ops_client, "/audit?object=churn%2F1")
    assert "of 2 matching" in versions and 'href="/models/churn/1">churn/1</a>' in versions
    for unknown in ("user=nobody", "action=no.such", "object=nothing", "type=dataset"):
        assert "No events match these filters." in page(ops_client, f"/audit?{unknown}")
    fragment = page(ops_client, "/audit?user=ben", headers=AUDIT)
    assert fragment.startswith('<section id="audit"') and "<html" not in fragment
    assert "?user=ben&amp;action=alias.set" in fragment  # a cell narrows the filter


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=x", "page=1e3", "page=99999999", "action=Bad!", "type=a.b",
     "user=a%0Ab", "object=" + "x" * 300],
)  # fmt: skip
def test_malformed_audit_queries_are_400_with_the_reason(ops_client: Any, query: str) -> None:
    html = page(ops_client, f"/audit?{query}", 400)
    assert re.search(r'<p class="error" role="alert">(page|action|type|user|object) ', html)
    fragment = page(ops_client, f"/audit?{query}", 400, headers=AUDIT)
    assert fragment.startswith('<section id="audit"')


def test_unknown_deployments_and_reports_are_404_pages_and_bad_input_400(
    ops_client: Any,
) -> None:
    assert "no deployment named &#39;nope&#39;" in page(ops_client, "/deployments/nope", 404)
    page(ops_client, "/deployments/nope/monitoring", 404)
    page(ops_client, "/monitoring/reports/" + "0" * 32, 404)
    page(ops_client, "/monitoring/reports/" + "0" * 32 + "/page", 404)
    page(ops_client, "/monitoring/reports/not-an-id", 400)
    page(ops_client, "/monitoring/reports/not-an-id/page", 400)
    page(ops_client, "/deployments/bad*name", 400)
    for window in ("2h", "", "24H"):
        html = page(ops_client, f"/deployments/churn?window={window}", 400)
        assert "window must be one of 1h, 6h, 24h, 7d, 30d" in html
    for target in ("/deployments/..%2f..%2fetc", "/deployments/%2e%2e/monitoring", "/audit/..%5c"):
        status, _, _ = send_raw(ops_client.app, "GET", target)
        assert status == 400, target


def test_markup_in_reasons_user_names_and_alerts_shows_as_text(
    ops_client: Any, ops_project: Any
) -> None:
    pages = {
        "/deployments/churn": [XSS_REASON],
        "/deployments/churn/monitoring": [XSS_REASON, XSS_ALERT],
        "/monitoring": [XSS_ALERT],
        "/audit": [XSS_USER],
        "/audit?page=2": [XSS_REASON],
    }
    for url, stored in pages.items():
        html = page(ops_client, url)
        for text in stored:
            assert text not in html, (url, text)
            assert text.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;") in html
        assert inline_code(html) == [], url
    report = ops_project.html_report
    assert inline_code(page(ops_client, f"/monitoring/reports/{report}")) == []
