"""Tracking benchmarks: making runs, metric logging throughput, run search, CLI start-up.

Each figure is printed next to a raw reference measured in the same run:
- `ll.start_run ... end` with 3 params, 2 metrics and a tag, in a git repository (as a
  tuning loop runs), versus the same rows written with sqlite3 directly in two
  transactions a run (start, end) on one kept connection, WAL, synchronous=NORMAL.
- durable per-call logging (`ll.log_metric` + `ll.flush()` each call), versus one
  sqlite3 INSERT + COMMIT per call on a kept connection.
- log_metric x 100,000 in one run (SQLite), final flush included, versus appending the
  same tuples to a list and inserting them with sqlite3's executemany.
- search_runs with a metric filter over 2,000 and 30,000 runs x 10 metrics, versus the
  equivalent hand-written SQL through sqlite3.
- `loopline --help` wall time, versus `python -c pass`.

Run: `python benchmarks/bench_tracking.py` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_time, median_times, print_table

CALLS = 100_000
METRICS = 10
RUNS = 300  # runs per timing of start_run ... end
DURABLE_CALLS = 1_000


def _git_repository(folder: Path) -> None:
    """A small committed repository whose files were last edited a minute ago."""
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    (folder / "README.md").write_text("# tuning\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run([*git, *args], cwd=folder, check=True)
    past = time.time() - 120
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (past, past), follow_symlinks=False)
    subprocess.run(["git", "status", "-s"], cwd=folder, check=True, capture_output=True)
    os.utime(folder / ".git" / "index", (past + 60, past + 60))


def _raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(
        "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, name TEXT, status TEXT, "
        "start_time INTEGER, end_time INTEGER);"
        "CREATE TABLE IF NOT EXISTS params (run_id TEXT, key TEXT, value TEXT);"
        "CREATE TABLE IF NOT EXISTS tags (run_id TEXT, key TEXT, value TEXT);"
        "CREATE TABLE IF NOT EXISTS points "
        "(run_id TEXT, key TEXT, value REAL, step INTEGER, timestamp INTEGER)"
    )
    return conn


def bench_runs(workdir: Path) -> Row:
    """ms per run for `ll.start_run ... end` (3 params, 2 metrics, 1 tag)."""
    import loopline as ll

    repo = workdir / "repo"
    _git_repository(repo)
    previous = Path.cwd()
    os.chdir(repo)
    ll.configure(project=workdir, store_uri=f"sqlite:///{workdir / 'runs.db'}")
    counter = iter(range(10**9))

    def ours() -> None:
        for _ in range(RUNS):
            i = next(counter)
            with ll.start_run("tune", params={"lr": 0.1, "depth": i % 9, "seed": i}) as run:
                run.set_tag("trial", "yes")
                ll.log_metric("loss", 1.0 / (i + 1))
                ll.log_metric("auc", 0.5 + i % 50 / 100)

    conn = _raw_connection(workdir / "raw-runs.db")

    def raw() -> None:
        for _ in range(RUNS):
            i = next(counter)
            run_id = uuid.uuid4().hex
            now = time.time_ns() // 1_000_000
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO runs VALUES (?, ?, 'RUNNING', ?, NULL)", (run_id, "r", now))
            conn.executemany(
                "INSERT INTO params VALUES (?, ?, ?)",
                [(run_id, "lr", "0.1"), (run_id, "depth", str(i % 9)), (run_id, "seed", str(i))],
            )
            conn.execute("INSERT INTO tags VALUES (?, 'trial', 'yes')", (run_id,))
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO points VALUES (?, ?, ?, 0, ?)",
                [(run_id, "loss", 1.0 / (i + 1), now), (run_id, "auc", 0.5, now)],
            )
            conn.execute(
                "UPDATE runs SET status = 'FINISHED', end_time = ? WHERE id = ?", (now, run_id)
            )
            conn.execute("COMMIT")

    try:
        ours()  # warm: imports, the first capture of git state and packages
        ours_s, raw_s = median_times([ours, raw], repeat=3)
    finally:
        conn.close()
        os.chdir(previous)
    return Row(
        "start_run ... end, 3 params 2 metrics 1 tag",
        ours_s * 1000 / RUNS,
        raw_s * 1000 / RUNS,
        "<= 5 ms a run",
        "ms/run",
    )


def bench_durable_logging(workdir: Path) -> Row:
    """calls/s for `ll.log_metric` + `ll.flush()` per call (each point committed)."""
    import loopline as ll

    ll.configure(project=workdir, store_uri=f"sqlite:///{workdir / 'durable.db'}")
    conn = _raw_connection(workdir / "raw-durable.db")
    run_id = uuid.uuid4().hex

    def ours() -> None:
        with ll.start_run("durable"):
            for step in range(DURABLE_CALLS):
                ll.log_metric("loss", 1.0 / (step + 1), step=step)
                ll.flush()

    def raw() -> None:
        for step in range(DURABLE_CALLS):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO points VALUES (?, 'loss', ?, ?, ?)",
                (run_id, 1.0 / (step + 1), step, time.time_ns() // 1_000_000),
            )
            conn.execute("COMMIT")

    try:
        ours_s, raw_s = median_times([ours, raw], repeat=3)
    finally:
        conn.close()
    return Row(
        "log_metric + flush per call (durable)",
        DURABLE_CALLS / ours_s,
        DURABLE_CALLS / raw_s,
        ">= 800 calls/s",
        unit="calls/s",
        higher_is_better=True,
    )


def bench_log_metric(workdir: Path) -> Row:
    import loopline as ll

    ll.configure(project=workdir, store_uri=f"sqlite:///{workdir / 'log.db'}")

    def ours() -> None:
        with ll.start_run(experiment="bench"):
            for step in range(CALLS):
                ll.log_metric("loss", 1.0 / (step + 1), step=step)

    def raw() -> None:
        conn = sqlite3.connect(workdir / "raw.db", isolation_level=None)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS points "
            "(run_id TEXT, key TEXT, value REAL, step INTEGER, timestamp INTEGER)"
        )
        points = []
        run_id = uuid.uuid4().hex
        for step in range(CALLS):
            points.append((run_id, "loss", 1.0 / (step + 1), step, time.time_ns() // 1_000_000))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", points)
        conn.execute("COMMIT")
        conn.close()

    ours_s = median_time(ours, repeat=5)
    raw_s = median_time(raw, repeat=5)
    return Row(
        "log_metric x100k (calls/s, flush incl.)",
        CALLS / ours_s,
        CALLS / raw_s,
        ">= 50,000 calls/s",
        unit="calls/s",
        higher_is_better=True,
    )


def populate(db_uri: str, runs: int) -> None:
    """Bulk-load `runs` finished runs with 10 metrics and 3 params each (setup only)."""
    from loopline.store import MetadataStore
    from loopline.store._engine import write_transaction
    from loopline.store._schema import latest_metrics, params
    from loopline.store._schema import runs as runs_table

    store = MetadataStore(db_uri)
    exp = store.runs.get_or_create_experiment("search")
    rng = random.Random(0)
    now = int(time.time() * 1000)
    run_rows, metric_rows, param_rows = [], [], []
    for index in range(runs):
        run_id = uuid.uuid4().hex
        run_rows.append(
            {
                "id": run_id,
                "experiment_id": exp.id,
                "name": f"run-{index}",
                "status": "FINISHED",
                "start_time": now - index,
                "end_time": now,
                "user": "bench",
                "source": "bench",
            }
        )
        for m in range(METRICS):
            metric_rows.append(
                {
                    "run_id": run_id,
                    "key": f"m{m}",
                    "step": 0,
                    "timestamp": now,
                    "value": rng.random(),
                }
            )
        for p, value in (("model", rng.choice(["rf", "lr", "gb"])), ("depth", str(index % 9))):
            param_rows.append({"run_id": run_id, "key": p, "value": value})
    with write_transaction(store.db.engine) as conn:
        conn.execute(runs_table.insert(), run_rows)
        conn.execute(latest_metrics.insert(), metric_rows)
        conn.execute(params.insert(), param_rows)
    store.close()


def bench_search(workdir: Path, runs: int, goal: str) -> Row:
    import loopline as ll

    db = workdir / f"search-{runs}.db"
    populate(f"sqlite:///{db}", runs)
    ll.configure(project=workdir, store_uri=f"sqlite:///{db}")
    query = "metrics.m3 > 0.5 and params.model = 'rf'"

    def ours() -> None:
        found = ll.search_runs(
            "search", filter=query, order_by=["metrics.m1 desc"], max_results=100
        )
        assert len(found) == 100

    conn = sqlite3.connect(db)

    def raw() -> None:
        rows = conn.execute(
            "SELECT r.id FROM runs r "
            "JOIN latest_metrics a ON a.run_id = r.id AND a.key = 'm3' "
            "JOIN params p ON p.run_id = r.id AND p.key = 'model' "
            "LEFT JOIN latest_metrics o ON o.run_id = r.id AND o.key = 'm1' "
            "WHERE a.value > 0.5 AND p.value = 'rf' ORDER BY o.value DESC LIMIT 100"
        ).fetchall()
        ids = [row[0] for row in rows]
        marks = ",".join("?" * len(ids))
        conn.execute(f"SELECT * FROM latest_metrics WHERE run_id IN ({marks})", ids).fetchall()
        conn.execute(f"SELECT * FROM params WHERE run_id IN ({marks})", ids).fetchall()

    ours_s = median_time(ours, repeat=15)
    raw_s = median_time(raw, repeat=15)
    conn.close()
    return Row(f"search_runs, {runs:,} runs x 10 metrics", ours_s * 1000, raw_s * 1000, goal, "ms")


def bench_cli_help() -> Row:
    entry = Path(sys.executable).parent / "loopline"

    def ours() -> None:
        subprocess.run([str(entry), "--help"], check=True, capture_output=True)

    def raw() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

    return Row(
        "loopline --help (wall)",
        median_time(ours, repeat=7) * 1000,
        median_time(raw, repeat=7) * 1000,
        "<= 300 ms",
        "ms",
    )


def main() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [
            bench_runs(workdir),
            bench_durable_logging(workdir),
            bench_log_metric(workdir),
            bench_search(workdir, 2_000, "<= 50 ms"),
            bench_search(workdir, 30_000, "<= 300 ms"),
            bench_cli_help(),
        ]
    print_table("Tracking", rows)
    return rows


if __name__ == "__main__":
    main()
