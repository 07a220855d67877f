"""Model registry benchmark: loading a registered model and signature-checked predict.

Figures (medians, each taken in turns with its reference):
- `ll.models.load("bench-forest/1")` of a registered 100-tree random forest (cached
  package: manifest check, BLAKE3 of every file, skops load) versus raw
  `skops.io.load` of the same `model.skops` file;
- `LoadedModel.predict` versus the raw model's `predict` on the same DataFrame, for one
  row and for 10,000 rows, for a scaled logistic regression (the fast model, where
  overhead shows most) and for the forest (fastest of 15 alternating batches each: the
  forest's own predict varies by more than the overhead on a busy machine);
- the signature check alone (`LoadedModel.check_input`, which always scans for missing
  values) on one row and on 10,000 rows.

Run: `python benchmarks/bench_models.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """The mean time of one call over a batch of `calls`, in microseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def paired_us(
    ours: Callable[[], object], raw: Callable[[], object], calls: int
) -> tuple[float, float, float]:
    """Medians of two functions called in strict alternation (raw, ours, raw, ...), and the
    median of the per-pair differences: on a shared machine the pairs see the same
    bursts of load, so the difference is the steadiest estimate of the overhead."""
    mine, theirs, deltas = [], [], []
    clock = time.perf_counter
    for _ in range(calls):
        start = clock()
        raw()
        middle = clock()
        ours()
        end = clock()
        theirs.append(middle - start)
        mine.append(end - middle)
        deltas.append((end - middle) - (middle - start))
    return (
        statistics.median(mine) * 1e6,
        statistics.median(theirs) * 1e6,
        statistics.median(deltas) * 1e6,
    )


def main() -> list[Row]:
    import numpy as np
    import skops.io
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import loopline as ll

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    rng = np.random.default_rng(0)
    big = features.iloc[rng.integers(0, len(features), 10_000)].reset_index(drop=True)
    one = features.iloc[[0]]
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(
        features, target
    )
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(
        features, target
    )
    rows: list[Row] = []
    overheads: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        ll.configure(project=scratch)
        forest_version = ll.models.log_model(forest, name="bench-forest", input_example=one)
        ll.models.log_model(logreg, name="bench-logreg", input_example=one)
        ll.models.load("bench-forest/1")  # materialize the package once
        cached = Path(scratch) / ".loopline" / "cache" / "models" / forest_version.package_hash
        skops_file = cached / "model.skops"
        trusted = skops.io.get_untrusted_types(file=skops_file)
        ours, raw = median_times(
            [
                lambda: ll.models.load("bench-forest/1"),
                lambda: skops.io.load(skops_file, trusted=trusted),
            ],
            repeat=7,
        )
        rows.append(
            Row(
                "load a registered 100-tree forest",
                ours * 1e3,
                raw * 1e3,
                "<= 1.5x skops.io.load",
            )
        )
        for name, raw_model in (("logreg", logreg), ("forest", forest)):
            loaded = ll.models.load(f"bench-{name}/1")
            for label, frame, calls in (
                ("1 row", one, 2000 if name == "logreg" else 1000),
                ("10,000 rows", big, 200 if name == "logreg" else 40),
            ):
                mine, theirs, delta = paired_us(
                    lambda frame=frame, loaded=loaded: loaded.predict(frame),
                    lambda frame=frame, m=raw_model: m.predict(frame),
                    calls,
                )
                goal = "<= +100 µs" if label == "1 row" else "<= 1.05x"
                rows.append(Row(f"{name} predict, {label}", mine, theirs, goal, unit="µs"))
                overheads.append((f"{name} predict, {label}", delta, delta / theirs))
        logreg_loaded = ll.models.load("bench-logreg/1")
        for label, frame in (("1 row", one), ("10,000 rows", big)):
            alone = statistics.median(
                per_call_us(lambda frame=frame: logreg_loaded.check_input(frame), 50)
                for _ in range(7)
            )
            print(f"  signature check alone, {label}: {alone:.1f} µs")
    print_table("Models: loading and signature-checked predict", rows)
    for figure, delta, share in overheads:
        print(f"  {figure}: median paired overhead {delta:+.1f} µs ({share:+.1%})")
    return rows


if __name__ == "__main__":
    main()
