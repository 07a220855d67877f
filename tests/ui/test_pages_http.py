"""The UI's pages over HTTP (in-process): what they answer, how they escape stored text,
how the runs table reads its URL, the errors they show, and the static files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from server._inprocess import send_raw
from ui.conftest import XSS_NAME, XSS_PARAM, XSS_TAG, UiProject

TEMPLATES = Path(__file__).parents[2] / "src/loopline/server/ui/templates"
VENDOR = Path(__file__).parents[2] / "src/loopline/server/ui/static/vendor"
HTMX = {"HX-Request": "true", "HX-Target": "runs"}


def page(client: Any, url: str, status: int = 200, **kwargs: Any) -> str:
    answer = client.get(url, **kwargs)
    assert answer.status_code == status, (url, answer.status_code, answer.text[:500])
    assert answer.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    return str(answer.text)


def names_in_table(html: str) -> list[str]:
    return re.findall(r'<td class="name"><a href="/runs/[0-9a-f]{32}">([^<]*)</a>', html)


def column(html: str, index: int) -> list[str]:
    """The text of the `index`-th cell of each body row of the runs table."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S) for row in rows]
    return [re.sub(r"<[^>]+>", "", row[index]).strip() for row in cells]


def inline_code(html: str) -> list[str]:
    """What of `html` the CSP would block: <script> without src, <style>, style="" and
    on*="" attributes (found by an HTML parser, so escaped text does not count)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if tag == "style" or (tag == "script" and "src" not in names):
                found.append(f"<{tag}>")
            found.extend(
                f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")
            )

    Finder().feed(html)
    return found


def test_the_home_page_lists_experiments_with_run_counts(ui_client: Any) -> None:
    html = page(ui_client, "/")
    assert re.search(r'href="/experiments/churn">churn</a></td>\s*<td class="number">60<', html)
    assert 'href="/experiments/empty">empty</a>' in html


def test_no_page_holds_inline_script_style_or_handlers(
    ui_client: Any, ui_project: UiProject
) -> None:
    urls = [
        "/",
        "/experiments/churn",
        "/experiments/xss?col=tags.note&col=params.payload",
        f"/runs/{ui_project.xss_run}",
        f"/runs/{ui_project.churn[0]}",
        "/experiments/nope",
    ]
    for url in urls:
        assert inline_code(ui_client.get(url).text) == [], url
    for template in TEMPLATES.glob("*.html"):
        assert "|safe" not in template.read_text().replace(" ", ""), template.name


def test_markup_in_run_names_params_and_tags_is_shown_as_text(
    ui_client: Any, ui_project: UiProject
) -> None:
    table = page(ui_client, "/experiments/xss?col=tags.note&col=params.payload")
    run = page(ui_client, f"/runs/{ui_project.xss_run}")
    for html in (table, run):
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
        assert "&#34;&gt;&lt;svg onload=alert(3)&gt;" in html
        for raw in (XSS_NAME, XSS_TAG, XSS_PARAM, "<svg"):
            assert raw not in html


def test_the_runs_table_pages_by_50_and_counts_all(ui_client: Any) -> None:
    first = page(ui_client, "/experiments/churn")
    assert "Runs 1–50 of 60" in first and len(names_in_table(first)) == 50
    assert 'rel="next" href="/experiments/churn?page=2"' in first
    second = page(ui_client, "/experiments/churn?page=2")
    assert "Runs 51–60 of 60" in second and len(names_in_table(second)) == 10
    assert 'rel="next"' not in second and 'rel="prev" href="/experiments/churn"' in second
    beyond = page(ui_client, "/experiments/churn?page=9")
    assert names_in_table(beyond) == [] and "60 in all" in beyond


def test_sorting_by_any_column_is_done_by_the_url(ui_client: Any) -> None:
    by_auc = page(ui_client, "/experiments/churn?order=metrics.auc+desc&col=metrics.auc")
    assert names_in_table(by_auc)[:3] == ["run-59", "run-58", "run-57"]
    values = [float(v) for v in column(by_auc, 6)]
    assert values == sorted(values, reverse=True)
    by_name = page(ui_client, "/experiments/churn?order=attributes.name+asc")
    assert names_in_table(by_name)[:3] == ["run-00", "run-01", "run-02"]
    by_duration = page(ui_client, "/experiments/churn?order=attributes.duration+desc")
    assert column(by_duration, 3)[0] == "12.5 s"  # index % 13 == 12: 12 s + 500 ms
    by_tag = page(ui_client, "/experiments/churn?order=tags.team+asc&col=tags.team")
    assert column(by_tag, 6)[:15] == ["growth"] * 15
    # the header of the sorted column sorts the other way; the others keep the columns
    assert 'href="/experiments/churn?order=metrics.auc%20asc&amp;col=metrics.auc"' in by_auc
    assert 'aria-sort="descending"' in by_auc


def test_the_filter_narrows_the_table_and_stays_in_its_links(ui_client: Any) -> None:
    url = "/experiments/churn?filter=" + quote("params.model = 'rf' and metrics.auc > 0.7")
    html = page(ui_client, url)
    assert "Runs 1–6 of 6 matching" in html
    assert set(column(html, 9)) == {"rf"}  # columns: 6 fixed, auc, loss, then C, model
    assert "filter=params.model%20%3D%20%27rf%27%20and%20metrics.auc%20%3E%200.7" in html


def test_a_filter_that_does_not_parse_shows_the_parsers_error(ui_client: Any) -> None:
    html = page(ui_client, "/experiments/churn?filter=" + quote("metrics.auc >> 1"), 400)
    assert re.search(r'<p class="error" role="alert">invalid filter at position 12', html)
    fragment = page(ui_client, "/experiments/churn?filter=metrics.auc+%3E%3E+1", 400, headers=HTMX)
    assert fragment.startswith("<section") and "invalid filter at position 12" in fragment
    for bad in ("order=params.", "page=0", "page=x", "col=attributes.name", "col=metrics.auc+desc"):
        assert 'class="error"' in page(ui_client, f"/experiments/churn?{bad}", 400)


def test_htmx_asks_for_the_table_alone(ui_client: Any) -> None:
    fragment = page(ui_client, "/experiments/churn?page=2", headers=HTMX)
    assert fragment.startswith('<section id="runs"') and "<html" not in fragment
    assert len(names_in_table(fragment)) == 10
    restore = page(
        ui_client, "/experiments/churn", headers={**HTMX, "HX-History-Restore-Request": "true"}
    )
    assert restore.startswith("<!doctype html>")


def test_columns_are_chosen_in_the_url(ui_client: Any) -> None:
    default = page(ui_client, "/experiments/churn")
    assert re.findall(r'<span class="kind">(\w+)</span> (\w+)', default) == [
        ("metric", "auc"), ("metric", "loss"), ("param", "C"), ("param", "model"),
    ]  # fmt: skip
    chosen = page(ui_client, "/experiments/churn?col=tags.team&col=metrics.auc")
    assert re.findall(r'<span class="kind">(\w+)</span> (\w+)', chosen) == [
        ("tag", "team"), ("metric", "auc"),
    ]  # fmt: skip
    assert 'value="tags.team" checked' in chosen and 'value="params.C">' in chosen
    assert "?page=2&amp;col=tags.team&amp;col=metrics.auc" in chosen


def test_a_run_page_shows_its_values(ui_client: Any, ui_project: UiProject) -> None:
    html = page(ui_client, f"/runs/{ui_project.churn[7]}")
    assert "<h1>run-07" in html and 'href="/experiments/churn"' in html
    assert re.search(r"<th scope=\"row\">auc</th><td class=\"number\">0.535</td>", html)
    assert "0123456789abcdef0123456789abcdef01234567</code> on main" in html
    short = page(ui_client, f"/runs/{ui_project.churn[7][:10]}")  # a unique prefix
    assert "<h1>run-07" in short


def test_unknown_names_are_404_pages_and_impossible_ones_400(ui_client: Any) -> None:
    assert "no experiment named &#39;nope&#39;" in page(ui_client, "/experiments/nope", 404)
    assert "no run with id" in page(ui_client, "/runs/" + "0" * 32, 404)
    page(ui_client, "/experiments/bad*name", 400)
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert "no such page" in page(ui_client, "/experiments/a/b", 404, headers=browser)
    api = ui_client.get("/api/v1/nothing", headers=browser)  # the API answers JSON
    assert api.status_code == 404 and api.json()["error"]["type"] == "NotFound"
    page(ui_client, "/runs/not-hex", 400)
    for target in (
        "/experiments/..%2f..%2fetc",
        "/experiments/%2e%2e",
        "/runs/..%5c..%5cwindows",
        "/experiments/a%00b",
        "/static/x/..%2f..%2fapp.py",
    ):
        status, _, _ = send_raw(ui_client.app, "GET", target)
        assert status == 400, target


def test_static_files_are_versioned_cached_and_as_vendored(ui_client: Any) -> None:
    from loopline.server.ui.static import static_url, version

    url = static_url("vendor/htmx.min.js")
    assert url == f"/static/{version()}/vendor/htmx.min.js"
    answer = ui_client.get(url)
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    stale = ui_client.get("/static/000000000000/vendor/htmx.min.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert ui_client.get(f"/static/{version()}/VENDORED.md").status_code == 404
    assert ui_client.get(f"/static/{version()}/nothing.js").status_code == 404
    table = (VENDOR / "VENDORED.md").read_text()
    recorded = dict(re.findall(r"^\| ([\w.-]+) \| \S+ \| ([0-9a-f]{64}) \|$", table, re.M))
    assert set(recorded) >= {"htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in recorded.items():
        served = ui_client.get(f"/static/{version()}/vendor/{name}")
        body = served.content if served.status_code == 200 else (VENDOR / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest, name


@pytest.mark.parametrize("path", ["/", "/experiments/churn"])
def test_pages_need_no_login_without_auth(ui_client: Any, path: str) -> None:
    assert ui_client.get("/login", follow_redirects=False).headers["location"] == "/"
    assert 'action="/logout"' not in page(ui_client, path)
