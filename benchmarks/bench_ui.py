"""Web UI benchmarks: the runs page of an experiment with 30,000 runs, server-side; and a
metric chart of 100,000 points, server-side and in Chromium.

An experiment of 30,000 finished runs, each with 3 params, 5 metrics and 2 tags, is
bulk-loaded through the store's tables (setup, untimed). Then the first page of its runs
table (`GET /experiments/bench`, 50 rows, default columns) is asked of the real app
in-process (Starlette's TestClient: routing, auth, the store's queries, Jinja2, the
guards), sorted by start time, by a metric, and filtered then sorted; and its last page
(offset 29,950). On PostgreSQL the tables are ANALYZEd after loading, as autovacuum
would. Each figure is the median of N requests, next to its reference measured
in turns with it: the store's own page query alone (`RunStore.search_runs_page` with the
same filter, order and offset), i.e. what the page adds is the rest.

The chart: one run with CHART_POINTS points of one metric (logged through the store).
`GET /charts/metric?key=loss&runs=ID&width=1000` (the downsampled answer a chart 1,000
pixels wide asks for: at most 2,000 points) through the app in-process, next to the raw
history read it replaces (`RunStore.get_metric_history`, every point as a MetricPoint);
and the store's thinned read alone (`get_metric_series` with `buckets=1000`: the
database keeps each bucket's lowest and highest point). In Chromium (when
/usr/bin/chromium and playwright are there): the run page served by uvicorn on a real
port, from navigation to the chart's canvas drawn (charts.js stamps
`performance.now()`), next to the page's own load event; medians of 5 fresh tabs.

Run: `python benchmarks/bench_ui.py [--store-uri postgresql+psycopg://...] [--repeat N]`
(the PostgreSQL URI names an empty schema; give another one for `--chart-store-uri`).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table, served_in_thread

RUNS = 30_000
GOAL = "<= 300 ms"
CHART_POINTS = 100_000
CHROMIUM = Path("/usr/bin/chromium")


def populate(store: Any, runs: int) -> None:
    """Bulk-load `runs` finished runs of experiment "bench" (params, metrics, tags)."""
    from loopline.store._engine import write_transaction
    from loopline.store._schema import latest_metrics, params, tags
    from loopline.store._schema import runs as runs_table

    exp = store.runs.get_or_create_experiment("bench")
    rng = random.Random(0)
    now = int(time.time() * 1000)
    run_rows, metric_rows, param_rows, tag_rows = [], [], [], []
    for index in range(runs):
        run_id = uuid.uuid4().hex
        start = now - index * 1000
        run_rows.append(
            {
                "id": run_id,
                "experiment_id": exp.id,
                "name": f"run-{index}",
                "status": "FINISHED" if index % 11 else "FAILED",
                "start_time": start,
                "end_time": start + rng.randint(1_000, 600_000),
                "user": rng.choice(["ana", "ben", "eve"]),
                "source": "train.py",
                "git_commit": uuid.uuid4().hex + "00000000",
            }
        )
        for m in range(5):
            metric_rows.append(
                {
                    "run_id": run_id,
                    "key": f"m{m}",
                    "step": 0,
                    "timestamp": start,
                    "value": rng.random(),
                }
            )
        for key, value in (
            ("model", rng.choice(["rf", "lr", "gb"])),
            ("depth", str(index % 9)),
            ("lr", str(rng.choice([0.1, 0.01, 0.001]))),
        ):
            param_rows.append({"run_id": run_id, "key": key, "value": value})
        for key, value in (("team", rng.choice(["risk", "growth"])), ("stage", "dev")):
            tag_rows.append({"run_id": run_id, "key": key, "value": value})
    with write_transaction(store.db.engine) as conn:
        for table, rows in (
            (runs_table, run_rows),
            (latest_metrics, metric_rows),
            (params, param_rows),
            (tags, tag_rows),
        ):
            for start in range(0, len(rows), 5_000):
                conn.execute(table.insert(), rows[start : start + 5_000])
    if store.db.engine.dialect.name == "postgresql":
        # what autovacuum does soon after a bulk load: without statistics the planner
        # takes the new tables for empty and joins 30,000 runs by a nested loop (~5x)
        from sqlalchemy import text

        with write_transaction(store.db.engine) as conn:
            conn.execute(text("ANALYZE runs, latest_metrics, params, tags"))


FILTER = "metrics.m3 > 0.5 and params.model = 'rf'"
CASES = [
    # (figure, filter, order, page)
    ("first page, newest first", None, None, 1),
    ("first page, sorted by a metric", None, "metrics.m1 desc", 1),
    ("first page, filtered, sorted by a metric", FILTER, "metrics.m1 desc", 1),
    ("last page (offset 29,950), sorted by a metric", None, "metrics.m1 desc", 600),
]


def bench(store_uri: str, label: str, repeat: int) -> list[Row]:
    from starlette.testclient import TestClient

    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app
    from loopline.tracking import parse_filter, parse_order_by

    with tempfile.TemporaryDirectory() as tmp:
        init_project(Path(tmp))
        opened = open_stores(project_settings(Path(tmp), store_uri=store_uri))
        started = time.perf_counter()
        populate(opened.metadata, RUNS)
        print(f"{label}: loaded {RUNS:,} runs in {time.perf_counter() - started:.1f} s")
        client = TestClient(create_app(opened), base_url="http://127.0.0.1:5000")
        runs = opened.metadata.runs
        experiment = [runs.get_experiment("bench").id]
        rows = []
        for figure, text, order, page in CASES:
            query = "&".join(
                f"{name}={quote(value)}"
                for name, value in (("filter", text), ("order", order), ("page", str(page)))
                if value and value != "1"
            )
            url = "/experiments/bench" + (f"?{query}" if query else "")

            def page_answer(url: str = url) -> None:
                answer = client.get(url)
                assert answer.status_code == 200, answer.text[:300]
                assert answer.text.count('<td class="name">') == 50

            condition, sort = parse_filter(text), parse_order_by([order] if order else None)

            def store_only(condition: Any = condition, sort: Any = sort, page: int = page) -> None:
                found = runs.search_runs_page(
                    experiment, condition, sort, offset=(page - 1) * 50, limit=50
                )
                assert len(found.runs) == 50

            page_answer()  # warm: templates compiled, statements cached
            ours, reference = median_times([page_answer, store_only], repeat=repeat)
            rows.append(Row(f"{label}: {figure}", ours * 1000, reference * 1000, GOAL, "ms"))
        client.close()
        opened.close()
    return rows


def bench_chart(store_uri: str, label: str, repeat: int) -> list[Row]:
    """The chart of a 100,000-point metric: server-side answers, then in Chromium."""
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app
    from loopline.store import MetricSpan

    with tempfile.TemporaryDirectory() as tmp:
        init_project(Path(tmp))
        opened = open_stores(project_settings(Path(tmp), store_uri=store_uri))
        runs = opened.metadata.runs
        run_id = runs.create_run(runs.get_or_create_experiment("charts").id, name="long").id
        start = int(time.time() * 1000)
        runs.log_metric_points(
            [
                (run_id, "loss", math.sin(step / 1000) + random.random() / 10, step, start + step)
                for step in range(CHART_POINTS)
            ]
        )
        if opened.metadata.db.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            from loopline.store._engine import write_transaction

            with write_transaction(opened.metadata.db.engine) as conn:
                conn.execute(text("ANALYZE metric_points"))
        app = create_app(opened)
        client = _client(app)
        url = f"/charts/metric?key=loss&runs={run_id}&width=1000"

        def answer() -> None:
            found = client.get(url)
            assert found.status_code == 200, found.text[:300]
            assert len(found.json()["series"][0]["xs"]) <= 2000

        def history() -> None:
            assert len(runs.get_metric_history(run_id, "loss")) == CHART_POINTS

        def thinned() -> None:
            found = runs.get_metric_series(run_id, "loss", MetricSpan(buckets=1000))
            assert found.thinned and len(found.step) <= 2000

        answer()  # warm: numpy imported, statements cached
        ours, raw, read = median_times([answer, history, thinned], repeat=repeat)
        rows = [
            Row(
                f"{label}: chart answer, {CHART_POINTS:,} points -> <= 2,000 (vs raw history read)",
                ours * 1000,
                raw * 1000,
                "<= 1 s drawn",
            ),
            Row(
                f"{label}: the store's thinned read alone (vs raw history read)",
                read * 1000,
                raw * 1000,
                "",
            ),
        ]
        if CHROMIUM.exists():
            rows.append(_drawn_in_chromium(app, run_id, label))
        client.close()
        opened.close()
    return rows


def _client(app: Any) -> Any:
    from starlette.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:5000")


def _drawn_in_chromium(app: Any, run_id: str, label: str, tabs: int = 5) -> Row:
    """From navigation to the loss chart's canvas drawn, next to the load event (ms)."""
    from playwright.sync_api import sync_playwright

    drawn, loaded = [], []
    with served_in_thread(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        for _ in range(tabs + 1):  # the first tab warms the browser's caches
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/runs/{run_id}", wait_until="load")
            figure = page.locator('figure.chart[data-key="loss"][data-state=drawn]')
            figure.wait_for(timeout=30_000)
            drawn.append(float(figure.get_attribute("data-drawn-ms") or "nan"))
            loaded.append(
                page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
            )
            page.close()
        browser.close()
    return Row(
        f"{label}: Chromium, navigation to the chart's canvas drawn (vs the load event)",
        statistics.median(drawn[1:]),
        statistics.median(loaded[1:]),
        "<= 1,000 ms",
    )


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-uri", help="also on PostgreSQL: a store URI (an empty schema)")
    parser.add_argument("--chart-store-uri", help="the chart on PostgreSQL: another empty schema")
    parser.add_argument("--repeat", type=int, default=15, help="requests per figure")
    parser.add_argument("--only", choices=["table", "chart"], help="one of the two benchmarks")
    args, _ = parser.parse_known_args()
    warnings.simplefilter("ignore")  # starlette asks for httpx2 in its TestClient
    rows: list[Row] = []
    if args.only != "chart":
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench(f"sqlite:///{Path(tmp) / 'ui.db'}", "SQLite", args.repeat)
        if args.store_uri:
            rows += bench(args.store_uri, "PostgreSQL", args.repeat)
        print_table(
            "Web UI: the runs page of 30,000 runs (reference: the store's page query)", rows
        )
    if args.only != "table":
        charts: list[Row] = []
        with tempfile.TemporaryDirectory() as tmp:
            charts += bench_chart(f"sqlite:///{Path(tmp) / 'chart.db'}", "SQLite", args.repeat)
        if args.chart_store_uri:
            charts += bench_chart(args.chart_store_uri, "PostgreSQL", args.repeat)
        print_table(f"Web UI: a metric chart of {CHART_POINTS:,} points", charts)
        rows += charts
    return rows


if __name__ == "__main__":
    main()
