"""Web UI benchmarks of the operations pages: the audit table over 100,000 events, and a
deployment's page over a day of its prediction log, server-side.

Audit: 100,000 events (20 users, one of them behind 30 % of the events; 12 actions; 200
models of 30 versions) are bulk-loaded into the audit table (setup, untimed; on
PostgreSQL ANALYZEd after, as autovacuum would). Then `GET /audit` is asked of the real
app in-process (Starlette's TestClient: routing, auth, the store's queries, Jinja2, the
guards): its first page, a deep page (offset 49,950), filtered by the busiest user, by a
rare user, by an action, by a model (`object=m7`: the model and its versions), and by a
user and an action together. Reference: the store's page query alone
(`AuditLog.events_page` with the same filters and offset), i.e. the page adds the rest.

Deployment: 20,000 requests (1-3 rows each, two model versions, labels for half) over
the last 23 hours, written by the real PredictionLog (24 hourly Parquet files, indexed,
in the artifact store). `GET /deployments/bench` (the 24 h window: 72 buckets) next to
its reference `predictions.read_traffic` alone (DuckDB over the files and the feedback).

Run: `python benchmarks/bench_ui_ops.py [--store-uri postgresql+psycopg://...]
[--repeat N]` (the PostgreSQL URI names an empty schema; the audit figures run there too).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table

EVENTS = 100_000
REQUESTS = 20_000
GOAL = "<= 300 ms"
USERS = ["ana", "ben"] + [f"user{i}" for i in range(18)]
ACTIONS = [
    "alias.set", "alias.delete", "model.update", "model_version.create",
    "model_version.approve", "deployment.create", "deployment.update", "deployment.rollback",
    "loop.started", "loop.canary", "monitor.alert.opened", "token.create",
]  # fmt: skip
CASES = [
    # (figure, filters, page)
    ("first page", {}, 1),
    ("page 1,000 (offset 49,950)", {}, 1000),
    ("by the busiest user (30 %)", {"user": "ana"}, 1),
    ("by a rare user (~3.5 %)", {"user": "user3"}, 1),
    ("by an action", {"action": "loop.canary"}, 1),
    ("by a model and its versions", {"object": "m7"}, 1),
    ("by a user and an action", {"user": "user3", "action": "alias.set"}, 1),
]


def populate_audit(store: Any, events: int) -> None:
    """Bulk-load `events` chained-looking events (their hashes are not a valid chain:
    the pages do not read them)."""
    from sqlalchemy import text, update

    from loopline.store._engine import write_transaction
    from loopline.store._schema import audit_events, audit_head

    rng = random.Random(0)
    now = datetime.now(UTC)
    rows = []
    for seq in range(1, events + 1):
        action = rng.choice(ACTIONS)
        rows.append(
            {
                "seq": seq,
                "id": uuid.uuid4().hex,
                "time": now - timedelta(seconds=events - seq),
                "actor": "ana" if rng.random() < 0.3 else rng.choice(USERS),
                "action": action,
                "object_type": action.split(".")[0],
                "object_id": f"m{rng.randrange(200)}/{rng.randrange(30)}",
                "before_json": None,
                "after_json": '{"version": 3}',
                "reason": "benchmark",
                "prev_hash": f"{seq:064x}",
                "hash": f"{seq + 1:064x}",
            }
        )
    with write_transaction(store.db.engine) as conn:
        for start in range(0, events, 5_000):
            conn.execute(audit_events.insert(), rows[start : start + 5_000])
        conn.execute(update(audit_head).values(seq=events, hash=f"{events + 1:064x}"))
        if store.db.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE audit_events"))


def populate_log(opened: Any, requests: int) -> None:
    """`requests` logged requests of deployment "bench" over the last 23 hours (all in
    the page's 24 h window, whose end is rounded up to its next bucket)."""
    import numpy as np

    from loopline.predictions import Block, PredictionLog, PredictionRecord

    config = {"model": {"model": "bench/1", "ref": "bench/1"}, "canary": None, "weight": 0.0}
    opened.metadata.deployments.create("bench", config, actor="bench")
    now = datetime.now(UTC)
    step = timedelta(hours=23) / requests
    labels = []
    with PredictionLog(opened, flush_seconds=600) as log:
        for index in range(requests):
            n = index % 3 + 1
            log(
                PredictionRecord(
                    request_id=f"b{index:07d}",
                    time=now - timedelta(hours=23) + step * index,
                    deployment="bench",
                    model_version="bench/2" if index % 10 == 0 else "bench/1",
                    runtime_version="native",
                    endpoint="predict",
                    predictions=np.zeros(n, dtype=np.int64),
                    probabilities=None,
                    latency_ms=1.0 + index % 17,
                    block=Block(("x1", "x2"), n, np.ones((n, 2))),
                )
            )
            if index % 2 == 0:
                labels.append((f"b{index:07d}", 0, "1"))
    opened.metadata.predictions.add_feedback("bench", labels)


def bench_audit(opened: Any, client: Any, label: str, repeat: int) -> list[Row]:
    from loopline.server.ui.audit import PAGE_SIZE

    audit = opened.metadata.audit
    rows = []
    for figure, filters, page in CASES:
        query = {**filters, **({"page": str(page)} if page > 1 else {})}
        url = "/audit" + (f"?{urlencode(query)}" if query else "")

        def page_answer(url: str = url) -> None:
            answer = client.get(url)
            assert answer.status_code == 200, answer.text[:300]

        def store_only(filters: dict[str, str] = filters, page: int = page) -> None:
            audit.events_page(
                actor=filters.get("user"),
                action=filters.get("action"),
                object_prefix=filters.get("object"),
                offset=(page - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
            )

        page_answer()  # warm: templates compiled, statements cached
        ours, reference = median_times([page_answer, store_only], repeat=repeat)
        rows.append(Row(f"{label}: audit, {figure}", ours * 1000, reference * 1000, GOAL, "ms"))
    return rows


def bench_deployment(opened: Any, client: Any, repeat: int) -> Row:
    from loopline.predictions import read_traffic
    from loopline.server.ui.deployments import WINDOWS, ceil_to

    length, bucket = WINDOWS["24h"]

    def page_answer() -> None:
        answer = client.get("/deployments/bench?window=24h")
        assert answer.status_code == 200, answer.text[:300]
        assert f"{REQUESTS:,} requests" in answer.text

    def traffic_only() -> None:
        until = ceil_to(datetime.now(UTC), bucket)
        read_traffic("bench", since=until - length, until=until, bucket=bucket, stores=opened)

    page_answer()  # warm: the log's files fetched into the cache, DuckDB loaded
    ours, reference = median_times([page_answer, traffic_only], repeat=repeat)
    figure = f"SQLite: deployment page, 24 h of log ({REQUESTS:,} requests)"
    return Row(figure, ours * 1000, reference * 1000, "<= 1,000 ms", "ms")


def bench(store_uri: str, label: str, repeat: int, with_log: bool) -> list[Row]:
    from starlette.testclient import TestClient

    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        init_project(Path(tmp))
        opened = open_stores(project_settings(Path(tmp), store_uri=store_uri))
        started = time.perf_counter()
        populate_audit(opened.metadata, EVENTS)
        print(f"{label}: loaded {EVENTS:,} events in {time.perf_counter() - started:.1f} s")
        client = TestClient(create_app(opened), base_url="http://127.0.0.1:5000")
        rows = bench_audit(opened, client, label, repeat)
        if with_log:
            started = time.perf_counter()
            populate_log(opened, REQUESTS)
            print(f"{label}: logged {REQUESTS:,} requests in {time.perf_counter() - started:.1f} s")
            rows.append(bench_deployment(opened, client, repeat))
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
        rows = bench(f"sqlite:///{Path(tmp) / 'ui.db'}", "SQLite", args.repeat, with_log=True)
    if args.store_uri:
        rows += bench(args.store_uri, "PostgreSQL", args.repeat, with_log=False)
    print_table("Web UI: the audit table of 100,000 events; a deployment's page", rows)
    return rows


if __name__ == "__main__":
    main()
