"""The dataset and model pages over HTTP (in-process): what they show of the project of
_fill_dm (versions, files, schema, profile, validation, diff; versions, gates,
evaluation, card, approvals, lineage), how they escape stored text, and their errors."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from server._inprocess import app_client, send_raw
from ui._fill_dm import XSS_CARD, XSS_COLUMN, XSS_DESCRIPTION, XSS_VALUE, DmProject
from ui.test_pages_http import inline_code, page

# the fixture project is built once per process: keep its modules in one
pytestmark = pytest.mark.xdist_group("ui-dm")

PAGES = [
    "/datasets",
    "/datasets/credit",
    "/datasets/credit/1",
    "/datasets/credit/2",
    "/datasets/credit/diff?a=1&b=2&key=id",
    "/models",
    "/models/churn",
    "/models/churn/1",
    "/models/churn/2",
]


def escaped(text: str) -> str:
    """`text` as Jinja's autoescape writes it."""
    from markupsafe import escape

    return str(escape(text))


def section(html: str, id: str) -> str:
    """The <section id="..."> of a page, up to the next section."""
    start = html.index(f'id="{id}"')
    return html[start : html.find("<section", start)]


class Links(HTMLParser):
    """The href of every <a> in the order found (inside SVG too)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value or "" for name, value in attrs if name == "href")


def test_the_lists_name_every_dataset_and_model(dm_client: Any) -> None:
    datasets = page(dm_client, "/datasets")
    assert 'href="/datasets/credit">credit</a>' in datasets
    assert 'href="/datasets/credit/2">2</a>' in datasets  # the latest version
    models = page(dm_client, "/models")
    assert 'href="/models/churn">churn</a>' in models
    assert 'href="/models/churn/1">@champion → 1</a>' in models
    assert escaped(XSS_DESCRIPTION) in models
    for html in (datasets, models):  # the navigation links both areas
        assert 'href="/datasets"' in html and 'href="/models"' in html


def test_a_dataset_lists_its_versions_with_their_validation(dm_client: Any) -> None:
    html = page(dm_client, "/datasets/credit")
    versions = re.findall(r'<td class="number"><a href="/datasets/credit/(\d)">', html)
    assert versions == ["2", "1"]
    assert re.search(r'verdict failed">5 failed</span> credit', html)
    assert re.search(r'verdict passed">passed</span> credit', html)
    assert escaped("rescaled <radius>") in html
    assert 'action="/datasets/credit/diff"' in html


def test_a_version_shows_its_files_schema_profile_and_validation(dm_client: Any) -> None:
    html = page(dm_client, "/datasets/credit/1")
    files = section(html, "files")
    assert "<code>credit.csv</code>" in files and "KiB" in files
    schema = section(html, "schema")
    assert '<td class="text">mean_radius</td><td><code>DOUBLE</code>' in schema
    profile = section(html, "profile")
    radius = profile[profile.index("<h3>mean_radius") : profile.index("<h3>mean_texture")]
    assert len(re.findall(r"<rect x=", radius)) == 20  # the profile's 20 bins, as bars
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', radius)]
    assert max(heights) == 62 and min(heights) >= 0
    segment = profile[profile.index("<h3>segment") : profile.index("<h3>sex")]
    assert re.findall(r"<text [^>]*>(\w+) · ", segment) == ["gold", "silver"]
    assert 'verdict passed">passed' in section(html, "validation")


def test_failing_examples_are_shown_as_text(dm_client: Any) -> None:
    html = page(dm_client, "/datasets/credit/2")
    validation = section(html, "validation")
    assert 'verdict failed">failed' in validation
    assert "mean_texture: column is missing from the data" in validation
    assert escaped('segment: 1 value not in {"gold", "silver"}') in validation
    row = re.search(r"<tr><td class=\"text\">2</td><td class=\"text hot\">([^<]*)</td>", html)
    assert row is not None and row[1] == escaped(XSS_VALUE)
    assert escaped(XSS_COLUMN) in section(html, "schema")
    main = html[html.index("<main>") :]
    for raw in (XSS_VALUE, XSS_COLUMN, "<script", "<img"):
        assert raw not in main


def test_the_diff_shows_schema_statistics_and_rows_by_key(dm_client: Any) -> None:
    html = page(dm_client, "/datasets/credit/diff?a=1&b=2&key=id")
    schema = section(html, "schema")
    assert f'<tr class="added"><td class="text">{escaped(XSS_COLUMN)}</td>' in schema
    assert '<tr class="removed"><td class="text">mean_texture</td>' in schema
    stats = section(html, "stats")
    assert re.search(r'<tr class="moved">\s*<td class="text">mean_radius</td>', stats)
    assert not re.search(r'<tr class="moved">\s*<td class="text">worst_area</td>', stats)
    rows = section(html, "rows")
    counts = dict(re.findall(r"<dt>(\w+)</dt><dd>([\d,]+)</dd>", rows))
    assert counts == {"Added": "0", "Removed": "5", "Changed": "564", "Unchanged": "0"}
    assert "<code>mean_radius</code> in 564 rows" in rows
    assert "<code>segment</code> in 1 row<" in rows
    change = re.search(r"<td class=\"text\">7</td><td class=\"text\">segment</td>(.*?)</tr>", rows)
    assert change is not None and escaped(XSS_VALUE) in change[1]
    assert '<option value="id" selected>id</option>' in html
    default = page(dm_client, "/datasets/credit/diff")  # the two newest versions
    assert 'href="/datasets/credit/1">v1</a> → <a href="/datasets/credit/2">v2</a>' in default
    assert "Choose a key column" in default


def test_a_key_the_rows_cannot_be_matched_by_is_said_with_the_rest_of_the_diff(
    dm_client: Any,
) -> None:
    html = page(dm_client, "/datasets/credit/diff?a=1&b=2&key=segment", 400)
    assert "key column &#39;segment&#39; is not unique in the old table" in html
    assert '<tr class="removed"><td class="text">mean_texture</td>' in html
    missing = page(dm_client, "/datasets/credit/diff?key=nope", 400)
    assert "nope" in section(missing, "rows")


def test_versions_too_large_are_not_matched_row_by_row_in_a_page(
    dm_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.server.ui import datasets

    monkeypatch.setattr(datasets, "MAX_ROW_DIFF_BYTES", 20_000)  # credit@1 is 21.9 KiB
    html = page(dm_client, "/datasets/credit/diff?a=1&b=2&key=id", 400)
    rows = section(html, "rows")
    assert "for versions up to 19.5 KiB; these hold 21.9 KiB and" in rows
    assert "loopline data diff credit@1 credit@2 --key KEY" in rows
    assert "<dt>Removed</dt>" not in rows and "mean_texture" in section(html, "schema")


def test_a_model_lists_its_versions_with_status_aliases_and_deployments(
    dm_client: Any,
) -> None:
    html = page(dm_client, "/models/churn")
    rows = re.findall(r"<tr>\s*<td class=\"number\">.*?</tr>", html, flags=re.S)
    assert len(rows) == 2
    newest, oldest = rows
    assert "status-candidate" in newest and 'churn-api</a> <span class="kind">canary' in newest
    assert "status-production" in oldest and "@champion" in oldest
    assert 'churn-api</a> <span class="kind">model' in oldest
    assert escaped(XSS_DESCRIPTION) in html and "limited" in html


def test_a_version_shows_gates_evaluation_card_and_approvals(dm_client: Any) -> None:
    html = page(dm_client, "/models/churn/1")
    gates = section(html, "gates")
    assert 'verdict passed">passed' in gates
    assert "<code>metrics.roc_auc &gt;= 0.95</code>" in gates
    evaluation = section(html, "evaluation")
    assert re.search(r'<th scope="row">roc_auc</th><td class="number">0\.9\d+</td>', evaluation)
    assert '<th scope="row">segment=gold</th>' in evaluation
    assert "Fairness by <code>sex</code>" in evaluation
    assert {"roc", "pr", "calibration"} == set(re.findall(r'id="chart-(\w+)"', evaluation))
    assert re.search(r'data-chart="\{&#34;x_label&#34;:&#34;false positive rate', evaluation)
    assert '<table class="grid confusion">' in evaluation
    card = section(html, "card")
    assert "As kept at the version" in card and escaped(XSS_CARD) in card
    assert escaped(XSS_DESCRIPTION) in card and "<dt>Risk category</dt><dd>limited</dd>" in card
    approvals = section(html, "approvals")
    assert "<td>ben</td>" in approvals and escaped("risk review <ok>") in approvals
    failed = page(dm_client, "/models/churn/2")
    assert 'verdict failed">failed' in section(failed, "gates")
    assert "Generated now" in section(failed, "card")
    assert "No approvals recorded." in failed


def test_the_lineage_graph_runs_from_data_to_deployment(
    dm_client: Any, dm_project: DmProject
) -> None:
    html = page(dm_client, "/models/churn/1")
    graph = section(html, "lineage")
    links = Links()
    links.feed(graph)
    assert links.hrefs == [
        "/datasets/credit/1",
        f"/runs/{dm_project.run_id}",
        "/models/churn/1",
        "/deployments/churn-api",
    ]
    assert len(re.findall(r'<path class="edge"', graph)) == 3
    assert 'class="node model current"' in graph
    assert re.search(
        r'class="detail"[^>]*>canary at 10 %<',
        section(page(dm_client, "/models/churn/2"), "lineage"),
    )


def test_no_page_holds_markup_from_the_data_or_inline_code(dm_client: Any) -> None:
    for url in PAGES:
        html = page(dm_client, url)
        assert inline_code(html) == [], url
        for raw in (XSS_VALUE, XSS_COLUMN, XSS_DESCRIPTION, XSS_CARD):
            assert raw not in html, (url, raw)


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/datasets/nope", 404, "nope"),
        ("/datasets/credit/9", 404, "no version 9"),
        ("/datasets/credit/x", 400, "a version is a number"),
        ("/datasets/credit/0", 400, "a version is a number"),
        ("/datasets/credit/99999999999", 400, "a version is a number"),
        ("/datasets/credit/%EF%BC%91", 400, "a version is a number"),  # a fullwidth 1
        ("/datasets/bad*name", 400, "invalid dataset name"),
        ("/datasets/bad*name/1", 400, "invalid dataset name"),
        ("/datasets/credit/diff?a=x", 400, "a version is a number"),
        ("/datasets/credit/diff?a=9", 404, "no version 9"),
        ("/datasets/credit/diff?c=1", 400, "unknown query parameter"),
        ("/datasets/nope/diff", 404, "nope"),
        ("/models/nope", 404, "no model named"),
        ("/models/churn/9", 404, "9"),
        ("/models/nope/1", 404, "nope"),
        ("/models/churn/one", 400, "a version is a number"),
        ("/models/churn/-1", 400, "a version is a number"),
        ("/models/bad*name", 400, "invalid model name"),
        ("/models/bad*name/1", 400, "invalid model name"),
    ],
)
def test_unknown_names_are_404_pages_and_impossible_ones_400(
    dm_client: Any, url: str, status: int, says: str
) -> None:
    html = page(dm_client, url, status)
    assert says in re.search(r'<p class="error" role="alert">([^<]*)</p>', html)[1]  # type: ignore[index]


@pytest.mark.parametrize(
    "target",
    [
        "/datasets/..%2f..%2fetc",
        "/datasets/%2e%2e",
        "/datasets/credit/..%2f1",
        "/models/..%5c..%5cwindows",
        "/models/churn/%2e%2e",
        "/datasets/a%00b",
    ],
)
def test_traversal_in_names_is_refused(dm_client: Any, target: str) -> None:
    status, _, _ = send_raw(dm_client.app, "GET", target)
    assert status == 400, target


def test_the_pages_ask_for_a_sign_in_when_the_server_has_auth(dm_project: DmProject) -> None:
    from loopline.server import create_app
    from loopline.server._auth import TokenAuthenticator

    opened = dm_project.stores
    authenticator = TokenAuthenticator(lambda: opened.metadata.tokens)
    client = app_client(create_app(opened, authenticator=authenticator))
    for path in ("/datasets", "/datasets/credit/1", "/models/churn/1"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F")
