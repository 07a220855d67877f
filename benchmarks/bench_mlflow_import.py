"""`loopline import mlflow` from SQLite: 1,000 runs x 10 metrics x 100 steps.

The source is an MLflow database created by the `mlflow` package (its real schema, at
its current revision), filled with raw SQL inserts (logging a million points through
MLflow would take an hour). Printed beside the floor: the same points read with sqlite3
and written into a fresh SQLite table with executemany, in one transaction per run.

Run: `python benchmarks/bench_mlflow_import.py [RUNS]` (needs mlflow-skinny installed).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

METRICS = 10
STEPS = 100


def mlflow_database(path: Path) -> None:
    """An empty MLflow store, created (and migrated) by mlflow itself."""
    script = (
        "import mlflow, sys; mlflow.set_tracking_uri('sqlite:///' + sys.argv[1]); "
        "mlflow.MlflowClient().search_experiments()"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True)


def fill(path: Path, runs: int) -> None:
    rng = random.Random(0)
    now = int(time.time() * 1000) - 86_400_000
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,"
            " creation_time, last_update_time) VALUES (1, 'bench', ?, 'active', ?, ?)",
            ((path.parent / "mlartifacts").as_uri(), now, now),
        )
        for n in range(runs):
            run_id = uuid.uuid4().hex
            start = now + n * 1000
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
                " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
                " artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench',"
                " 'FINISHED', ?, ?, '', 'active', ?, 1)",
                (run_id, f"run-{n}", start, start + 900, f"/nonexistent/{run_id}/artifacts"),
            )
            conn.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [("lr", str(rng.random()), run_id), ("depth", str(n % 10), run_id)],
            )
            conn.execute(
                "INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.user', 'bench', ?)",
                (run_id,),
            )
            points = [
                (f"m{k}", rng.random(), start + step, run_id, step, 0)
                for k in range(METRICS)
                for step in range(STEPS)
            ]
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                points,
            )
            conn.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                [(f"m{k}", 0.5, start + STEPS - 1, STEPS - 1, run_id) for k in range(METRICS)],
            )


def floor(source: Path, target: Path) -> float:
    """Every point read with sqlite3 and written to a fresh table, a transaction a run."""
    started = time.perf_counter()
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, isolation_level=None)
    dst.execute("PRAGMA journal_mode = WAL")
    dst.execute("CREATE TABLE points (run TEXT, key TEXT, value REAL, step INT, ts INT)")
    for (run_id,) in src.execute("SELECT run_uuid FROM runs").fetchall():
        rows = src.execute(
            "SELECT run_uuid, key, value, step, timestamp FROM metrics WHERE run_uuid=?",
            (run_id,),
        ).fetchall()
        dst.execute("BEGIN")
        dst.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
        dst.execute("COMMIT")
    return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = root / "mlflow.db"
        made = time.perf_counter()
        mlflow_database(source)
        fill(source, runs)
        print(
            f"source: {runs:,} runs x {METRICS} metrics x {STEPS} steps "
            f"(built in {time.perf_counter() - made:.1f} s)"
        )
        project = root / "project"
        project.mkdir()
        os.chdir(project)
        for name in [n for n in os.environ if n.startswith("LOOPLINE_")]:
            del os.environ[name]
        import loopline as ll
        from loopline.config import init_project
        from loopline.importers import import_mlflow

        init_project(project)
        ll.configure(project=project)
        started = time.perf_counter()
        summary = import_mlflow(f"sqlite:///{source}")
        first = time.perf_counter() - started
        started = time.perf_counter()
        again = import_mlflow(f"sqlite:///{source}")
        second = time.perf_counter() - started
        raw = floor(source, root / "floor.db")
        points = summary.metric_points
        print(
            f"import:       {first:7.1f} s  ({summary.new:,} runs, {points:,} points, "
            f"{points / first:,.0f} points/s)"
        )
        print(f"import again: {second:7.1f} s  ({again.unchanged:,} unchanged, {again.new} new)")
        print(
            f"raw sqlite3 copy of the same points: {raw:.1f} s "
            f"(import / floor = {first / raw:.1f}x)"
        )


if __name__ == "__main__":
    main()
