"""`bench_monitoring.py --only window`: `ll.monitoring.run` over a 10,000,000-row window.

Builds (once, cached in WINDOW_CACHE) a project: a dataset version of 200,000 reference
rows x 20 numeric features and a binary target, a LogisticRegression trained on it in a
run and logged with log_model, a deployment "window" serving it, and a prediction log of
10,000,000 one-row requests: 500 Parquet files of 20,000 rows, one per UTC hour (in the
past), written with the log's own encoder (`encode_spool_file`) with the model's real
predictions and probabilities, stored in the artifact store and indexed with `add_file`.
Features f0 and f1 move by 0.2 and 0.1 sd in the window; 1 % of the rows get feedback.

Then `ll.monitoring.run` over the whole window runs in a child process (wall time and
peak RSS from `getrusage(RUSAGE_CHILDREN)`; median of 3), beside the raw reference: one
DuckDB scan computing count and avg of every input over the same files.
Goal of issue 14: <= 30 s and <= 2 GB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import Row, print_table

WINDOW_CACHE = Path(os.environ.get("LOOPLINE_BENCH_WINDOW", "/tmp/loopline-bench-window"))
FEATURES = [f"f{i}" for i in range(20)]
REFERENCE_ROWS = 200_000
FILES = 500
ROWS_PER_FILE = 20_000
FEEDBACK_SHARE = 0.01
SHIFT = {"f0": 0.2, "f1": 0.1}  # in standard deviations (every feature has sd 1)
DEPLOYMENT = "window"
SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = """
import json, resource, sys, time
from datetime import datetime
sys.path.insert(0, {src!r})
import os
os.chdir({root!r})
import loopline as ll
from loopline.project import configure
configure(project={root!r})
start = time.perf_counter()
report = ll.monitoring.run(
    {deployment!r},
    since=datetime.fromisoformat({since!r}),
    until=datetime.fromisoformat({until!r}),
    store=False,
)
seconds = time.perf_counter() - start
body = report.to_dict()
print(json.dumps({{
    "seconds": seconds,
    "rows": body["rows"],
    "status": body["status"],
    "drifted": sorted(report.drifted),
    "labelled": (body.get("performance") or {{}}).get("labelled_rows"),
}}))
"""


def _frame(rng: Any, rows: int, shift: dict[str, float]) -> Any:
    import numpy as np

    matrix = rng.normal(size=(rows, len(FEATURES)))
    for index, name in enumerate(FEATURES):
        matrix[:, index] += shift.get(name, 0.0)
    logits = 1.5 * matrix[:, 0] - 1.0 * matrix[:, 1] + 0.5 * matrix[:, 2]
    target = (logits + 0.5 * rng.normal(size=rows) > 0).astype(np.int64)
    return matrix, target


def _build_project(root: Path) -> dict[str, Any]:
    """The project, model, deployment and reference; the window's bounds."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopline as ll
    from loopline.config import init_project
    from loopline.project import configure
    from loopline.serving.deployments import create_deployment

    root.mkdir(parents=True)
    init_project(root)
    os.chdir(root)
    opened = configure(project=root)
    matrix, target = _frame(np.random.default_rng(0), REFERENCE_ROWS, {})
    frame = pd.DataFrame(matrix, columns=FEATURES)
    frame["y"] = target
    (root / "data").mkdir()
    frame.to_parquet(root / "data" / "reference.parquet", index=False)
    ll.data.add(root / "data" / "reference.parquet")
    with ll.start_run(experiment="window"):
        train = ll.data.load("reference@1")
        model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["y"])
        version = ll.models.log_model(model, "window-model", input_example=train[FEATURES].head(5))
    create_deployment(DEPLOYMENT, version.ref)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=FILES)
    labels = _write_log(opened, model, version.ref, start)
    _send_feedback(labels)
    return {"since": start.isoformat(), "until": end.isoformat(), "version": version.ref}


def _write_log(opened: Any, model: Any, version: str, start: datetime) -> list[dict[str, Any]]:
    """Write and index FILES hourly files; the feedback items of 1 % of the rows."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from loopline.predictions import Block, PredictionBatch
    from loopline.predictions._parquet import encode_spool_file
    from loopline.predictions._request_filter import build_filter

    rng = np.random.default_rng(1)
    feedback: list[dict[str, Any]] = []
    started = time.perf_counter()
    for index in range(FILES):
        hour = start + timedelta(hours=index)
        ids = [f"w{index:03d}-{row:05d}" for row in range(ROWS_PER_FILE)]
        seconds = np.sort(rng.uniform(0, 3599, ROWS_PER_FILE))
        times = [hour + timedelta(seconds=float(s)) for s in seconds]
        matrix, target = _frame(rng, ROWS_PER_FILE, SHIFT)
        probabilities = model.predict_proba(pd.DataFrame(matrix, columns=FEATURES))
        batch = PredictionBatch(
            deployment=DEPLOYMENT,
            model_version=version,
            runtime_version=version,
            request_ids=ids,
            times=times,
            endpoints=["predict"] * ROWS_PER_FILE,
            latency_ms=rng.uniform(0.5, 3.0, ROWS_PER_FILE),
            row_counts=np.ones(ROWS_PER_FILE, np.int64),
            block=Block(tuple(FEATURES), ROWS_PER_FILE, matrix),
            predictions=model.classes_[probabilities.argmax(axis=1)],
            probabilities=probabilities,
        )
        data = encode_spool_file(DEPLOYMENT, hour, [batch])
        blob = opened.artifacts.put_bytes(data)
        opened.metadata.predictions.add_file(
            DEPLOYMENT,
            hour=hour,
            blob_hash=blob.hash,
            rows=ROWS_PER_FILE,
            first_time=times[0],
            last_time=times[-1],
            size_bytes=blob.size,
            request_filter=build_filter(pa.array(ids, pa.string())),
        )
        chosen = np.flatnonzero(rng.random(ROWS_PER_FILE) < FEEDBACK_SHARE)
        feedback += [{"request_id": ids[i], "row": 0, "label": int(target[i])} for i in chosen]
    took = time.perf_counter() - started
    print(f"wrote and indexed {FILES * ROWS_PER_FILE:,} rows in {FILES} files in {took:.0f} s")
    return feedback


def _send_feedback(items: list[dict[str, Any]]) -> None:
    from loopline.predictions import record_feedback

    for first in range(0, len(items), 10_000):
        record_feedback(DEPLOYMENT, items[first : first + 10_000])
    print(f"recorded {len(items):,} feedback labels")


def prepare() -> dict[str, Any]:
    """The cached project (built on first use); its window bounds and log files."""
    root = WINDOW_CACHE / "proj"
    meta_path = WINDOW_CACHE / "window.json"
    if not meta_path.exists():
        if root.exists():
            import shutil

            shutil.rmtree(root)  # a build that did not finish
        meta = _build_project(root)
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    meta["root"] = str(root)
    return meta


def _child(meta: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """One monitoring run in a fresh process: its figures and its peak RSS in MB (the
    child's own rusage from wait4, so runs do not share one RUSAGE_CHILDREN maximum)."""
    code = CHILD.format(
        src=str(SRC),
        root=meta["root"],
        deployment=DEPLOYMENT,
        since=meta["since"],
        until=meta["until"],
    )
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # reaps it: Popen must not wait again
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode:
        raise SystemExit(f"the monitoring run failed:\n{stderr}")
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def _duckdb_scan(root: Path, since: str, until: str) -> float:
    """Seconds of one DuckDB scan computing count and avg of every input over the window."""
    import duckdb

    from loopline.predictions import prediction_log_files
    from loopline.project import configure

    opened = configure(project=root)
    paths = prediction_log_files(
        DEPLOYMENT,
        since=datetime.fromisoformat(since),
        until=datetime.fromisoformat(until),
        stores=opened,
    )
    columns = ", ".join(f'count(inputs."{n}"), avg(inputs."{n}")' for n in FEATURES)
    with duckdb.connect() as con:
        started = time.perf_counter()
        con.execute(
            f"SELECT count(*), {columns} FROM read_parquet($files, union_by_name = true)",
            {"files": [str(p) for p in paths]},
        ).fetchall()
        return time.perf_counter() - started


def window(repeat: int = 3) -> list[Row]:
    """ll.monitoring.run over the 10M-row window in child processes: time and peak RSS."""
    meta = prepare()
    runs = []
    for _ in range(repeat):
        figures, peak = _child(meta)
        runs.append((figures["seconds"], peak))
        print(
            f"run: {figures['seconds']:.1f} s, peak {peak:,.0f} MB, rows {figures['rows']:,}, "
            f"status {figures['status']}, drifted {figures['drifted']}, "
            f"labelled {figures['labelled']}"
        )
    scans = [_duckdb_scan(Path(meta["root"]), meta["since"], meta["until"]) for _ in range(3)]
    seconds = statistics.median(s for s, _ in runs)
    peak_mb = statistics.median(p for _, p in runs)
    rows = [
        Row(
            "monitoring.run, 10M rows x 20 inputs",
            seconds,
            statistics.median(scans),
            "<= 30 s",
            "s",
        ),
        Row("peak memory of that run (RSS)", peak_mb, 2048.0, "<= 2,048 MB", "MB"),
    ]
    print_table("ll.monitoring.run over a 10,000,000-row window (reference: one DuckDB scan)", rows)
    return rows
