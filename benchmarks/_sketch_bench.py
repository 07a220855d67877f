"""The monitor's sketch path (`bench_monitoring.py --only sketch`).

- sketching: `sketch_file` on one 20,000-row log file (20 numeric inputs, a text input,
  an integer prediction, two class probabilities; the log's columns and types), median
  of 5: the cost the log thread pays per delivered file.
- merge + judge: 720 hourly files' sketch blobs (20 numeric features, 14,000 rows each:
  10,080,000 rows) decoded, merged per column, turned into windows over 100,000-row
  references and judged (PSI, KS, Wasserstein, verdicts). Goal: <= 1 s. Beside it, the
  exact accumulators (NumericWindow.update) over the same 10M x 20 values, timed while
  the files are generated (CPU only: reading the Parquet files comes on top).
- error: on a 72-file (1,008,000-row) window with shifts of 0 to 0.5 sd, the largest
  absolute difference between the sketch path's KS, PSI and Wasserstein and the exact
  path's, over the 20 features.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Row, print_table

FEATURES = 20
FILE_ROWS = 14_000
FILES = 720
REFERENCE_ROWS = 100_000


def _log_table(rows: int, seed: int, shifts: list[float]) -> Any:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns = [pa.array(rng.normal(shifts[i], 1.0, rows)) for i in range(FEATURES)]
    columns.append(pa.array(rng.choice(["north", "south", "east"], rows)))
    names = [f"f{i}" for i in range(FEATURES)] + ["region"]
    first = rng.random(rows)
    probabilities = pa.array(list(np.column_stack([first, 1 - first])), pa.list_(pa.float64()))
    return pa.table(
        {
            "model_version": pa.array(["credit/1"] * rows),
            "prediction": pa.array((first > 0.5).astype(np.int64)),
            "probabilities": probabilities,
            "inputs": pa.StructArray.from_arrays(columns, names),
        }
    )


def sketching() -> Row:
    import pyarrow.parquet as pq

    from loopline.predictions._sketch import sketch_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        pq.write_table(_log_table(20_000, 0, [0.0] * FEATURES), path)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            size = len(sketch_file(path))
            times.append(time.perf_counter() - start)
    print(f"one file's sketch blob: {size:,} bytes")
    return Row("sketch_file, one 20,000-row log file", statistics.median(times) * 1e3, 0, "", "ms")


def _blobs(
    files: int, shifts: list[float], references: list[Any]
) -> tuple[list[bytes], Any, float]:
    """The files' sketch blobs, the exact windows over the same values, and the exact
    accumulators' time."""
    import numpy as np

    from loopline.monitoring._numeric import NumericWindow
    from loopline.predictions._sketch import encode, sketch_table

    exact = [NumericWindow(reference) for reference in references]
    blobs = []
    exact_seconds = 0.0
    for index in range(files):
        table = _log_table(FILE_ROWS, 1000 + index, shifts)
        blobs.append(encode(sketch_table(table)))
        inputs = table.column("inputs").combine_chunks()
        start = time.perf_counter()
        for feature in range(FEATURES):
            exact[feature].update(np.asarray(inputs.field(feature)))
        exact_seconds += time.perf_counter() - start
    return blobs, exact, exact_seconds


def _judge_sketches(blobs: list[bytes], references: list[Any]) -> dict[str, Any]:
    from loopline.monitoring._sketches import merge_sketches, numeric_window
    from loopline.monitoring._verdict import DriftThresholds, judge
    from loopline.predictions._sketch import read_file_sketch

    merged = merge_sketches([read_file_sketch(blob) for blob in blobs])["credit/1"][1]
    thresholds = DriftThresholds()
    return {
        f"f{i}": judge(
            f"f{i}",
            references[i],
            numeric_window(references[i], merged[f"input:f{i}"]),
            thresholds,
        )
        for i in range(FEATURES)
    }


def _references() -> list[Any]:
    import numpy as np

    from loopline.monitoring._numeric import NumericReference

    rng = np.random.default_rng(7)
    return [NumericReference.build(rng.normal(0.0, 1.0, REFERENCE_ROWS)) for _ in range(FEATURES)]


def merge_and_judge() -> list[Row]:
    from loopline.monitoring._verdict import DriftThresholds, judge
    from loopline.store.artifacts import ArtifactStore

    references = _references()
    generated = time.perf_counter()
    blobs, exact, exact_seconds = _blobs(FILES, [0.0] * FEATURES, references)
    generated = time.perf_counter() - generated
    start = time.perf_counter()
    for i in range(FEATURES):
        judge(f"f{i}", references[i], exact[i], DriftThresholds())
    exact_seconds += time.perf_counter() - start
    total = sum(len(b) for b in blobs)
    print(f"{FILES} blobs, {total / 1e6:.1f} MB in all; made in {generated:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(str(Path(tmp) / "artifacts"))
        digests = [store.put_bytes(blob).hash for blob in blobs]
        times, fetch_times = [], []
        for _ in range(3):
            start = time.perf_counter()
            fetched = [store.get_bytes(digest) for digest in digests]
            fetch_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            verdicts = _judge_sketches(fetched, references)
            times.append(time.perf_counter() - start)
    assert len(verdicts) == FEATURES
    label = f"{FILES} files x {FEATURES} features ({FILES * FILE_ROWS:,} rows)"
    fetch, merge = statistics.median(fetch_times), statistics.median(times)
    return [
        Row(f"fetch (verified) {FILES} sketch blobs, local store", fetch, 0, "", "s"),
        Row(
            f"decode + merge + judge, {label}",
            merge,
            exact_seconds,
            "<= 1 s (reference: exact accumulators + judge, CPU only, no Parquet reading)",
            "s",
        ),
    ]


def error() -> None:
    from loopline.monitoring._numeric import numeric_statistics
    from loopline.monitoring._verdict import DriftThresholds, judge

    references = _references()
    shifts = [0.5 * i / (FEATURES - 1) for i in range(FEATURES)]
    blobs, exact, _ = _blobs(72, shifts, references)
    sketched = _judge_sketches(blobs, references)
    worst = {"ks": 0.0, "psi": 0.0, "wasserstein": 0.0}
    relative = {"psi": 0.0, "wasserstein": 0.0}
    flips = 0
    for i in range(FEATURES):
        truth = numeric_statistics(references[i], exact[i])
        mine = sketched[f"f{i}"].to_dict()
        for key in worst:
            worst[key] = max(worst[key], abs(mine[key] - truth[key]))
        for key in relative:
            if truth[key] > 0.01:
                relative[key] = max(relative[key], abs(mine[key] - truth[key]) / truth[key])
        verdict = judge(f"f{i}", references[i], exact[i], DriftThresholds())
        flips += verdict.drifted != mine["drifted"]
    print(
        f"sketch vs exact on a {72 * FILE_ROWS:,}-row window (20 features, shifts 0-0.5 sd): "
        f"largest |error| KS {worst['ks']:.4f}, PSI {worst['psi']:.4f}, "
        f"Wasserstein {worst['wasserstein']:.4f}; largest relative error (where > 0.01) "
        f"PSI {relative['psi']:.1%}, Wasserstein {relative['wasserstein']:.1%}; "
        f"verdicts that differ: {flips} of {FEATURES}"
    )


def sketch() -> list[Row]:
    rows = [sketching(), *merge_and_judge()]
    print_table("The sketch path of a monitoring report", rows)
    error()
    return rows
