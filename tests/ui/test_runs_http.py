"""The runs pages over HTTP (in-process): a run's page (diff, packages, lineage,
artifacts), the charts' JSON (downsampled, zoomed, refused), artifact previews and their
hostile cases, and the compare page."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import quote

import pytest

from server._inprocess import send_raw
from ui._fill_runs import (
    BIG_CSV_ROWS,
    DIP,
    DIP_STEP,
    LONG_POINTS,
    NAN_STEP,
    SPIKE,
    SPIKE_STEP,
    START_MS,
    XSS_PARAM,
    RunsArea,
    loss_at,
)
from ui.test_pages_http import inline_code, page


def chart(client: Any, query: str, status: int = 200) -> Any:
    answer = client.get(f"/charts/metric?{query}")
    assert answer.status_code == status, (query, answer.text[:300])
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def artifact(client: Any, area: RunsArea, kind: str, view: str = "", status: int = 200) -> Any:
    path = quote(area.artifacts[kind], safe="")
    suffix = f"/{view}" if view else ""
    answer = client.get(f"/runs/{area.long_run}/artifact{suffix}?path={path}")
    assert answer.status_code == status, (kind, answer.status_code, answer.text[:300])
    return answer


def test_a_run_page_shows_its_diff_packages_lineage_and_artifacts(
    ui_client: Any, runs_area: RunsArea
) -> None:
    html = page(ui_client, f"/runs/{runs_area.long_run}")
    assert '<span class="add">+lr = 0.01  # &lt;script&gt;alert(6)&lt;/script&gt;</span>' in html
    assert '<span class="del">-lr = 0.1</span>' in html and "on branch exp/lr" in html
    assert "3 installed packages (Python 3.12.7)" in html and "scikit-learn==1.5.2" in html
    assert '<a href="/datasets/credit/1">credit@1</a>' in html  # in
    assert '<a href="/models/churn/3">churn/3</a>' in html  # out
    assert f'href="/runs/{runs_area.long_run}/artifact?path=plots%2Froc.png"' in html
    assert 'path=notes%2F100%25.txt">notes/100%.txt</a>' in html
    assert re.findall(r'<figure class="chart" data-key="(\w+)">', html) == ["acc", "loss"]
    assert f'data-runs="{runs_area.long_run}"' in html
    assert inline_code(html) == [] and "<script>alert" not in html


def test_a_chart_keeps_the_lowest_and_highest_point_of_each_bucket(
    ui_client: Any, runs_area: RunsArea
) -> None:
    body = chart(ui_client, f"key=loss&runs={runs_area.long_run}&width=100")
    [series] = body["series"]
    assert body["x"] == "step" and series["name"] == "long"
    assert series["points"] == LONG_POINTS - 1 and series["skipped"] == 1  # the NaN
    assert series["downsampled"] and len(series["xs"]) <= 200
    shown = dict(zip(series["xs"], series["ys"], strict=True))
    assert shown[SPIKE_STEP] == SPIKE and shown[DIP_STEP] == DIP
    assert series["xs"] == sorted(series["xs"]) and NAN_STEP not in shown
    scale = 100 / (LONG_POINTS - 1)  # 100 buckets over steps 0..19,999; the last one in 99
    buckets: dict[int, list[int]] = {}
    for step in range(LONG_POINTS):
        buckets.setdefault(min(int(step * scale), 99), []).append(step)
    for bucket, steps in buckets.items():  # each bucket's extremes, from the known data
        values = [loss_at(step) for step in steps if step != NAN_STEP]
        inside = [shown[step] for step in steps if step in shown]
        assert min(inside) == min(values) and max(inside) == max(values), bucket


def test_zooming_in_reads_the_range_only_down_to_every_point(
    ui_client: Any, runs_area: RunsArea
) -> None:
    run = runs_area.long_run
    [fine] = chart(ui_client, f"key=loss&runs={run}&width=400&start=999.5&end=1100")["series"]
    assert not fine["downsampled"] and fine["xs"] == list(range(1000, 1101))
    assert fine["ys"] == [loss_at(step) for step in range(1000, 1101)]
    [near] = chart(ui_client, f"key=loss&runs={run}&width=50&start=7000&end=8000")["series"]
    assert near["points"] == 1001 and len(near["xs"]) <= 100
    assert min(near["xs"]) >= 7000 and max(near["xs"]) <= 8000 and DIP in near["ys"]
    start_s = START_MS / 1000
    body = chart(
        ui_client, f"key=loss&runs={run}&x=time&width=20&start={start_s}&end={start_s + 9.95}"
    )
    [by_time] = body["series"]
    assert body["x"] == "time" and by_time["points"] == 100  # steps 0..99, 100 ms apart
    assert by_time["xs"][0] == start_s and by_time["xs"] == sorted(by_time["xs"])
    empty = chart(ui_client, f"key=absent&runs={run}")["series"][0]
    assert (empty["xs"], empty["points"]) == ([], 0)


def test_several_runs_are_charted_at_once(ui_client: Any, runs_area: RunsArea) -> None:
    body = chart(ui_client, "key=loss&runs=" + ",".join(runs_area.compared))
    assert [series["name"] for series in body["series"]] == ["cmp-a", "cmp-b", "cmp-c"]
    assert [series["ys"][0] for series in body["series"]] == [1.0, 0.5, pytest.approx(1 / 3)]


@pytest.mark.parametrize(
    "query",
    [
        "key=loss&width=5",
        "key=loss&width=4001",
        "key=loss&width=12.5",
        "key=loss&width=wide",
        "key=loss&x=epoch",
        "key=loss&start=nan",
        "key=loss&start=10&end=1",
        "key=loss&end=1e300",
        "width=100",  # no key
        "key=loss&key=acc",
    ],
)
def test_a_malformed_chart_query_is_a_400_with_a_json_error(
    ui_client: Any, runs_area: RunsArea, query: str
) -> None:
    body = chart(ui_client, f"{query}&runs={runs_area.long_run}", 400)
    assert body["error"]["type"] == "MalformedRequest" and "\n" not in body["error"]["message"]


def test_chart_runs_are_checked(ui_client: Any, runs_area: RunsArea) -> None:
    assert chart(ui_client, "key=loss", 400)["error"]["message"].startswith("name the runs")
    assert chart(ui_client, "key=loss&runs=../../etc", 400)["error"]["type"] == "MalformedRequest"
    many = ",".join(f"{index:032x}" for index in range(21))
    assert "at most 20 runs" in chart(ui_client, f"key=loss&runs={many}", 400)["error"]["message"]
    assert chart(ui_client, "key=loss&runs=" + "0" * 32, 404)["error"]["type"] == "NotFound"


def test_an_image_is_an_img_of_its_bytes_served_as_that_image(
    ui_client: Any, runs_area: RunsArea
) -> None:
    html = artifact(ui_client, runs_area, "image").text
    raw = f"/runs/{runs_area.long_run}/artifact/raw?path=plots%2Froc.png"
    assert f'<img class="artifact-image" src="{raw.replace("&", "&amp;")}"' in html
    answer = ui_client.get(raw)
    assert answer.headers["content-type"] == "image/png" and answer.content.startswith(b"\x89PNG")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert answer.headers["content-disposition"].startswith('inline; filename="roc.png"')
    download = ui_client.get(raw + "&download=1")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")


def test_tables_show_their_first_rows_escaped_and_bounded(
    ui_client: Any, runs_area: RunsArea
) -> None:
    small = artifact(ui_client, runs_area, "csv").text
    assert "<th>id</th><th>name</th><th>score</th>" in small
    assert '<td class="text">&lt;b&gt;ana&lt;/b&gt;</td>' in small and "<b>ana" not in small
    big = artifact(ui_client, runs_area, "big_csv").text
    assert big.count("<tr><td") == 100 and "the first 100 rows" in big
    assert f"{BIG_CSV_ROWS - 1},{(BIG_CSV_ROWS - 1) * 7}" not in big
    parquet = artifact(ui_client, runs_area, "parquet").text
    assert "<th>id</th><th>label</th>" in parquet and parquet.count("<tr><td") == 100
    assert "the first 100 of 500 rows" in parquet and "&lt;b&gt;99&lt;/b&gt;" in parquet


def test_json_is_reprinted_and_text_shown_as_text(ui_client: Any, runs_area: RunsArea) -> None:
    shown = artifact(ui_client, runs_area, "json").text
    assert (
        "{\n  &#34;auc&#34;: 0.9,\n  &#34;note&#34;: &#34;&lt;script&gt;x&lt;/script&gt;&#34;\n}"
        in shown
    )
    text = artifact(ui_client, runs_area, "text").text
    assert "epoch 2 &lt;b&gt;loss&lt;/b&gt;=0.3" in text
    percent = artifact(ui_client, runs_area, "percent").text
    assert "all of it" in percent


def test_an_html_report_is_only_framed_in_a_sandbox_of_its_own(
    ui_client: Any, runs_area: RunsArea
) -> None:
    html = artifact(ui_client, runs_area, "html").text
    frame = re.search(r"<iframe class=\"report\" sandbox src=\"([^\"]+)\"", html)
    assert frame is not None and "document.title" not in html and "<h1 id" not in html
    report = ui_client.get(frame[1].replace("&amp;", "&"))
    policy = report.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "allow-" not in policy
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert report.headers["x-frame-options"] == "SAMEORIGIN"
    assert report.text.startswith("<!doctype html>")
    raw = artifact(ui_client, runs_area, "html", "raw")  # never this origin's page
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith("attachment;")
    image = quote(runs_area.artifacts["image"], safe="")
    not_html = ui_client.get(f"/runs/{runs_area.long_run}/artifact/report?path={image}")
    assert not_html.status_code == 400


def test_svg_and_binary_files_are_never_shown_as_what_they_hold(
    ui_client: Any, runs_area: RunsArea
) -> None:
    svg = artifact(ui_client, runs_area, "svg").text
    assert "SVG is shown as its source" in svg and "&lt;script&gt;alert(7)" in svg
    assert "<svg" not in svg.split("<main>")[1]
    raw = artifact(ui_client, runs_area, "svg", "raw")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith('attachment; filename="evil.svg"')
    binary = artifact(ui_client, runs_area, "binary").text
    assert "No preview: binary content" in binary and "download" in binary


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "a\\..\\b", "%2e%2e/x", ""],
)
def test_an_artifact_path_that_could_escape_is_a_400(
    ui_client: Any, runs_area: RunsArea, path: str
) -> None:
    for view in ("", "/raw", "/report"):
        answer = ui_client.get(f"/runs/{runs_area.long_run}/artifact{view}?path={path}")
        assert answer.status_code == 400, (view, path)
        assert "text/html" in answer.headers["content-type"]


def test_only_the_runs_own_files_are_read(
    ui_client: Any, runs_area: RunsArea, ui_project: Any
) -> None:
    for target in (
        f"/runs/{ui_project.xss_run}/artifact/raw?path=plots/roc.png",  # another run's
        f"/runs/{runs_area.long_run}/artifact?path=plots",  # a folder
        f"/runs/{runs_area.long_run}/artifact?path=plots/nothing.png",
        f"/runs/{'0' * 32}/artifact?path=plots/roc.png",
    ):
        assert ui_client.get(target).status_code == 404, target
    for target in (f"/runs/{runs_area.long_run}/artifact/..%2f..%2fraw", "/runs/..%2f/artifact"):
        assert send_raw(ui_client.app, "GET", target)[0] == 400, target
    twice = f"/runs/{runs_area.long_run}/artifact?path=model.bin&path=metrics.json"
    assert ui_client.get(twice).status_code == 400


def test_compare_marks_the_rows_that_differ(ui_client: Any, runs_area: RunsArea) -> None:
    html = page(ui_client, "/compare?runs=" + ",".join(runs_area.compared))
    rows = {
        axis: mark
        for mark, axis in re.findall(r'<tr class="\w+ (differs|same)" data-axis="([^"]+)">', html)
    }
    assert rows["params.lr"] == "differs" and rows["metrics.auc"] == "differs"
    assert rows["params.model"] == "same" and rows["experiment"] == "same"
    assert rows["params.note"] == "differs"  # set in one run only
    assert "&#34;&gt;&lt;img src=x onerror=alert(5)&gt;" in html and XSS_PARAM not in html
    assert re.findall(r'data-value="([^"]*)"', html.split('data-axis="params.lr"')[1])[:3] == [
        "0.1", "0.01", "0.001",
    ]  # fmt: skip
    assert f'data-runs="{",".join(runs_area.compared)}"' in html
    assert inline_code(html) == []
    form = page(ui_client, "/compare?" + "&".join(f"runs={r}" for r in runs_area.compared[:2]))
    assert "Compare 2 runs" in form and 'class="grid diff"' in form
    only = page(ui_client, "/compare?only=diff&runs=" + ",".join(runs_area.compared))
    assert (
        'class="grid diff only-diff"' in only
        and 'id="only-diff" type="checkbox" name="only" value="diff" checked' in only
    )


def test_compare_needs_2_to_20_known_runs(ui_client: Any, runs_area: RunsArea) -> None:
    one = page(ui_client, f"/compare?runs={runs_area.long_run}", 400)
    assert re.search(r'<p class="error" role="alert">compare 2 to 20 runs; got 1', one)
    page(ui_client, f"/compare?runs={runs_area.long_run},{runs_area.long_run}", 400)
    page(ui_client, "/compare", 400)
    many = ",".join(f"{index:032x}" for index in range(21))
    assert "at most 20 runs" in page(ui_client, f"/compare?runs={many}", 400)
    unknown = page(ui_client, f"/compare?runs={runs_area.long_run},{'0' * 32}", 404)
    assert "no run with id" in unknown
    page(ui_client, f"/compare?runs={runs_area.long_run},../x", 400)


def test_the_runs_table_ticks_runs_to_compare(ui_client: Any, runs_area: RunsArea) -> None:
    html = page(ui_client, "/experiments/charts")
    assert '<form id="compare-runs" class="compare" method="get" action="/compare">' in html
    ticks = re.findall(
        r'<input class="pick" type="checkbox" name="runs" value="(\w+)" form="compare-runs"', html
    )
    assert set(ticks) == {runs_area.long_run, *runs_area.compared}


def test_metric_values_are_finite_numbers_in_every_chart_answer(
    ui_client: Any, runs_area: RunsArea
) -> None:
    body = chart(ui_client, f"key=loss&runs={runs_area.long_run}&width=4000")
    assert all(math.isfinite(value) for value in body["series"][0]["ys"])
