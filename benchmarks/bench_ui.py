"""Web UI benchmarks: the runs page of an experiment with 30,000 runs, server-side.

An experiment of 30,000 finished runs, each with 3 params, 5 metrics and 2 tags, is
bulk-loaded through the store's tables (setup, untimed). Then the first page of its runs
table (`GET /experiments/bench`, 50 rows, default columns) is asked of the real app
in-process (Starlette's TestClient: routing, auth, the store's queries, Jinja2, the
guards), sorted by start time, by a metric, and filtered then sorted; and its last page
(offset 29,950). On PostgreSQL the tables are ANALYZEd after loading, as autovacuum
would. Each figure is the median of N requests, next to its reference measured
in turns with it: the store's own page query alone (`RunStore.search_runs_page` with the
same filter, order and offset), i.e. what the page adds is the rest.

Run: `python benchmarks/bench_ui.py [--store-uri postgresql+psycopg://...] [--repeat N]`
(the PostgreSQL URI names an empty schema).
"""

from __future__ import annotations

import argparse
import random
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

from _harness import Row, median_times, print_table

RUNS = 30_000
GOAL = "<= 300 ms"


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


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-uri", help="also on PostgreSQL: a store URI (an empty schema)")
    parser.add_argument("--repeat", type=int, default=15, help="requests per figure")
    args, _ = parser.parse_known_args()
    warnings.simplefilter("ignore")  # starlette asks for httpx2 in its TestClient
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(f"sqlite:///{Path(tmp) / 'ui.db'}", "SQLite", args.repeat)
    if args.store_uri:
        rows += bench(args.store_uri, "PostgreSQL", args.repeat)
    print_table("Web UI: the runs page of 30,000 runs (reference: the store's page query)", rows)
    return rows


if __name__ == "__main__":
    main()
