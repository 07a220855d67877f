"""Trace benchmark: `ll.trace` for one request id in a prediction log of 10 million rows.

Builds a project whose deployment "bench" (serving bench-model/1, trained in a tracked
run) has logged 10,000,000 one-row requests: FILES Parquet files of 20,000 rows, one per
UTC hour, written with the log's own encoder (`encode_spool_file`, 5 numeric inputs and
class probabilities), stored in the artifact store and indexed with
`metadata.predictions.add_file`, each with the filter of its request ids that delivery
computes. Then it times `ll.trace` (median of 5 after a first call that fills the local
cache) for an id in the first, the middle and the last file and for an absent id, beside
the raw reference: DuckDB scanning only the `request_id` column of every file (local
copies, already fetched; the fetch itself is not counted) for the same id.

Run: `python benchmarks/bench_trace.py` (~2 minutes; `--rows 1000000` for a quick look;
`--store-uri postgresql+psycopg://...` for PostgreSQL metadata).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Row, median_time, print_table

ROWS_PER_FILE = 20_000
INPUTS = ("age", "income", "tenure", "usage", "score")


def _ids(rng: np.random.Generator, count: int) -> list[str]:
    """`count` random 32-hex request ids (as the server's uuid4 ids)."""
    text = np.frombuffer(rng.bytes(16 * count).hex().encode(), dtype="S32")
    return text.astype(str).tolist()  # type: ignore[no-any-return]


def _write_log(opened: object, total_rows: int) -> tuple[list[list[str]], float]:
    """Write and index the log; the ids of each file and the seconds it took."""
    import pyarrow as pa

    from loopline.predictions import Block, PredictionBatch
    from loopline.predictions._parquet import encode_spool_file
    from loopline.predictions._request_filter import build_filter

    rng = np.random.default_rng(0)
    files = max(1, total_rows // ROWS_PER_FILE)
    # from the next hour on: every row falls under the deployment's first revision
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    started = time.perf_counter()
    every: list[list[str]] = []
    for index in range(files):
        hour = start + timedelta(hours=index)
        ids = _ids(rng, ROWS_PER_FILE)
        seconds = np.sort(rng.uniform(0, 3599, ROWS_PER_FILE))
        times = [hour + timedelta(seconds=float(s)) for s in seconds]
        matrix = rng.normal(size=(ROWS_PER_FILE, len(INPUTS)))
        probability = rng.uniform(size=ROWS_PER_FILE)
        batch = PredictionBatch(
            deployment="bench",
            model_version="bench-model/1",
            runtime_version="bench-model/1",
            request_ids=ids,
            times=times,
            endpoints=["predict"] * ROWS_PER_FILE,
            latency_ms=rng.uniform(0.5, 3.0, ROWS_PER_FILE),
            row_counts=np.ones(ROWS_PER_FILE, np.int64),
            block=Block(INPUTS, ROWS_PER_FILE, matrix),
            predictions=(probability > 0.5).astype(np.int64),
            probabilities=np.column_stack([1 - probability, probability]),
        )
        data = encode_spool_file("bench", hour, [batch])
        blob = opened.artifacts.put_bytes(data)  # type: ignore[attr-defined]
        opened.metadata.predictions.add_file(  # type: ignore[attr-defined]
            "bench",
            hour=hour,
            blob_hash=blob.hash,
            rows=ROWS_PER_FILE,
            first_time=times[0],
            last_time=times[-1],
            size_bytes=blob.size,
            request_filter=build_filter(pa.array(ids, pa.string())),
        )
        every.append(ids)
    return every, time.perf_counter() - started


def _register_model() -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopline as ll
    from loopline.serving import deployments

    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(50, len(INPUTS))), columns=INPUTS)
    with ll.start_run(experiment="bench", params={"C": 1.0}):
        model = LogisticRegression().fit(frame, frame["age"] > 0)
        ll.models.log_model(model, name="bench-model", input_example=frame.head(3))
    deployments.create_deployment("bench", "bench-model/1", reason="benchmark")


def _duckdb_scan(paths: list[Path], request_id: str) -> int:
    import duckdb

    with duckdb.connect() as con:
        found = con.execute(
            "SELECT count(*) FROM read_parquet($files) WHERE request_id = $id",
            {"files": [str(p) for p in paths], "id": request_id},
        ).fetchone()
    return int(found[0]) if found else 0


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--store-uri", default=None, help="metadata store (default: SQLite)")
    args = parser.parse_args()

    import loopline as ll
    from loopline.config import init_project
    from loopline.errors import NotFound
    from loopline.predictions import prediction_log_files
    from loopline.predictions._request_filter import probe
    from loopline.project import close, configure

    with tempfile.TemporaryDirectory(prefix="bench-trace-") as folder:
        root = Path(folder) / "proj"
        root.mkdir()
        init_project(root)
        os.chdir(root)
        if args.store_uri:
            os.environ["LOOPLINE_STORE_URI"] = args.store_uri
        opened = configure(project=root)
        _register_model()
        ids, took = _write_log(opened, args.rows)
        rows = len(ids) * ROWS_PER_FILE
        print(f"wrote and indexed {rows:,} rows in {len(ids)} files in {took:.1f} s")
        paths = prediction_log_files("bench")  # local copies for the raw reference
        targets = {
            "first file": ids[0][ROWS_PER_FILE // 2],
            "middle file": ids[len(ids) // 2][7],
            "last file": ids[-1][-1],
            "absent id": _ids(np.random.default_rng(99), 1)[0],  # not in the log
        }
        figures = []
        for label, request_id in targets.items():

            def traced(request_id: str = request_id) -> None:
                with contextlib.suppress(NotFound):
                    ll.trace(request_id)

            first_started = time.perf_counter()
            traced()
            first = time.perf_counter() - first_started
            ours = median_time(traced, repeat=5)
            scan = median_time(lambda request_id=request_id: _duckdb_scan(paths, request_id), 3)
            index_started = time.perf_counter()
            wanted = probe(request_id)
            blocks = opened.metadata.predictions.files_for_request(wanted.block_hash, "bench")
            let_through = sum(wanted.found_in(block) for _, block in blocks)
            index_ms = (time.perf_counter() - index_started) * 1000
            print(
                f"{label}: first call {first * 1000:.0f} ms (fetches its file); the index "
                f"query and filters: {index_ms:.0f} ms, {let_through} of {len(blocks)} files read"
            )
            figures.append(
                Row(
                    f"trace, id in the {label}" if "file" in label else "trace, absent id",
                    ours * 1000,
                    scan * 1000,
                    "<= 1000 ms",
                )
            )
        found = ll.trace(targets["middle file"])
        assert found.model is not None and found.run is not None and found.revision is not None
        close()
    print_table(f"ll.trace in a log of {rows:,} rows (reference: DuckDB request_id scan)", figures)
    return figures


if __name__ == "__main__":
    main()
