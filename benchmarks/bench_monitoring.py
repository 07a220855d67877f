"""Drift statistics benchmark: speed against scipy's KS test, and detection quality.

- speed: `loopline.monitoring.drift()` over 100,000 x 20 numeric current rows against
  100,000 reference rows (both pandas DataFrames; PSI, KS, Wasserstein, the PCA figure,
  verdicts) versus `scipy.stats.ks_2samp` over the same 20 columns; medians of 5 rounds
  taken in turns. Goal: <= 2x ks_2samp's time.
- quality: a fixed synthetic suite (seed 0). Per n in 1,000 / 10,000 / 100,000 rows on each
  side: 500 unshifted numeric columns (normal, log-normal, exponential, Poisson integers,
  uniform) and 500 unshifted categorical ones give the false-alarm rate; 100 columns per
  scenario give the detection rate: mean shifts of 0.05 to 0.5 sd, variance x1.5 and
  x0.7, one of 10 categories moving from 10 % to 15 %, a new category at 5 %.
  Goals: false alarms <= 1 % at every n; detection >= 95 % for shifts >= 0.2 sd at
  n >= 10,000. Verdicts use the default DriftThresholds.
- scale (only with `--only scale`: it writes ~1.7 GB of Parquet): drift() streaming a
  10,000,000 x 20 Parquet window against a 1,000,000-row Parquet reference, in a child
  process (wall time and peak RSS), beside one DuckDB aggregate scan of the window
  (count, min, max, avg of every column: the floor for anything that reads every value).
  Goal of issue 14: <= 30 s and <= 2 GB.

- sketch (only with `--only sketch`, ~2 min): the monitor's sketch path: sketching one
  log file, merging and judging 720 hourly files' sketches (10M rows), and the sketch
  statistics' error against the exact ones; see _sketch_bench.py.
- window (only with `--only window`; see _monitoring_window.py): `ll.monitoring.run` over a
  10,000,000-row prediction log window (a project cached under /tmp), in a child process.
- cbpe: performance estimated before labels (CBPE) against the realised performance on a
  shifting stream; see bench_monitoring_perf.py.

Run: `python benchmarks/bench_monitoring.py [--only speed|quality|cbpe|scale|sketch|window]`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table

SIZES = (1_000, 10_000, 100_000)
UNSHIFTED_COLUMNS = 500
SCENARIO_COLUMNS = 100
CATEGORIES = [f"c{i}" for i in range(10)]


def speed() -> list[Row]:
    """drift() vs ks_2samp over 100,000 x 20 numeric columns."""
    import numpy as np
    import pandas as pd
    from scipy.stats import ks_2samp

    from loopline.monitoring import drift

    rng = np.random.default_rng(0)
    rows, columns = 100_000, 20
    reference = pd.DataFrame({f"f{i}": rng.normal(i, 1 + i, rows) for i in range(columns)})
    current = pd.DataFrame(
        {f"f{i}": rng.normal(i + 0.1 * (i % 3), 1 + i, rows) for i in range(columns)}
    )

    def ours() -> None:
        report = drift(reference, current)
        assert len(report.features) == columns

    def scipy_ks() -> None:
        for name in reference.columns:
            ks_2samp(reference[name].to_numpy(), current[name].to_numpy())

    ours_s, scipy_s = median_times([ours, scipy_ks], repeat=5)
    rows_out = [Row("drift(), 100,000 x 20 vs 100,000 rows", ours_s, scipy_s, "<= 2x", "s")]
    print_table("Drift report speed (reference: scipy.stats.ks_2samp, 20 columns)", rows_out)
    return rows_out


def _numeric_null(rng: Any, n: int, column: int) -> tuple[Any, Any]:
    """Reference and current from the same distribution (one of five families)."""
    family = column % 5
    draw: Callable[[], Any]
    if family == 0:
        draw = lambda: rng.normal(3.0, 2.0, n)  # noqa: E731
    elif family == 1:
        draw = lambda: rng.lognormal(0.0, 1.0, n)  # noqa: E731
    elif family == 2:
        draw = lambda: rng.exponential(5.0, n)  # noqa: E731
    elif family == 3:
        draw = lambda: rng.poisson(3.0, n).astype(float)  # noqa: E731
    else:
        draw = lambda: rng.uniform(-1.0, 1.0, n)  # noqa: E731
    return draw(), draw()


def _categorical(rng: Any, n: int, shares: dict[str, float]) -> Any:
    import numpy as np

    names = np.array(list(shares))
    weights = np.array(list(shares.values()))
    return names[rng.choice(names.size, n, p=weights / weights.sum())]


def scenarios() -> dict[str, Callable[[Any, int, int], tuple[Any, Any]]]:
    """Scenario name -> make(rng, n, column) -> (reference values, current values)."""
    even = dict.fromkeys(CATEGORIES, 0.1)
    moved = {**dict.fromkeys(CATEGORIES, 0.85 / 9), "c0": 0.15}
    with_new = {**dict.fromkeys(CATEGORIES, 0.095), "new": 0.05}
    made: dict[str, Callable[[Any, int, int], tuple[Any, Any]]] = {
        "unshifted numeric": _numeric_null,
        "unshifted categorical": lambda rng, n, _: (
            _categorical(rng, n, even),
            _categorical(rng, n, even),
        ),
    }
    for shift in (0.05, 0.1, 0.2, 0.3, 0.5):
        made[f"mean shift {shift} sd"] = lambda rng, n, _, s=shift: (
            rng.normal(0, 1, n),
            rng.normal(s, 1, n),
        )
    for factor in (1.5, 0.7):
        made[f"variance x{factor}"] = lambda rng, n, _, f=factor: (
            rng.normal(0, 1, n),
            rng.normal(0, f**0.5, n),
        )
    made["category 10% -> 15%"] = lambda rng, n, _: (
        _categorical(rng, n, even),
        _categorical(rng, n, moved),
    )
    made["new category at 5%"] = lambda rng, n, _: (
        _categorical(rng, n, even),
        _categorical(rng, n, with_new),
    )
    return made


def verdicts(name: str, n: int, thresholds: Any = None) -> list[Any]:
    """The FeatureDrift of every column of one scenario at one n (seeded per scenario/n)."""
    import zlib

    import numpy as np

    from loopline.monitoring import (
        CategoricalReference,
        CategoricalWindow,
        NumericReference,
        NumericWindow,
        judge,
    )

    make = scenarios()[name]
    rng = np.random.default_rng([zlib.crc32(name.encode()), n])
    count = UNSHIFTED_COLUMNS if name.startswith("unshifted") else SCENARIO_COLUMNS
    results = []
    for column in range(count):
        reference_values, current_values = make(rng, n, column)
        window: Any
        if reference_values.dtype.kind == "f":
            reference: Any = NumericReference.build(reference_values)
            window = NumericWindow(reference)
        else:
            reference = CategoricalReference.build(reference_values)
            window = CategoricalWindow(reference)
        window.update(current_values)
        results.append(judge(f"{name} {column}", reference, window, thresholds))
    return results


def quality() -> bool:
    """Print detection rates per scenario and n; return whether the goals are met."""
    from rich.console import Console
    from rich.table import Table

    from loopline.monitoring import DriftThresholds

    rates: dict[tuple[str, int], float] = {}
    for name in scenarios():
        for n in SIZES:
            found = verdicts(name, n)
            rates[name, n] = sum(feature.drifted for feature in found) / len(found)
    table = Table(title=f"Drift detection rate (defaults: {DriftThresholds()})")
    table.add_column("scenario")
    for n in SIZES:
        table.add_column(f"n = {n:,}", justify="right")
    table.add_column("goal")
    goals_met = True
    for name in scenarios():
        goal = ""
        if name.startswith("unshifted"):
            goal = "<= 1 % (false alarms)"
            met = all(rates[name, n] <= 0.01 for n in SIZES)
        elif name.startswith("mean shift") and float(name.split()[2]) >= 0.2:
            goal = ">= 95 % at n >= 10,000"
            met = all(rates[name, n] >= 0.95 for n in SIZES[1:])
        else:
            met = True
        goals_met &= met
        if goal:
            goal += " met" if met else " MISSED"
        table.add_row(name, *[f"{100 * rates[name, n]:.1f} %" for n in SIZES], goal)
    Console().print(table)
    print("quality goals met" if goals_met else "quality goals MISSED")
    return goals_met


SCALE_CHILD = """
import resource, sys, time
sys.path.insert(0, {src!r})
from loopline.monitoring import drift
start = time.perf_counter()
report = drift({reference!r}, {current!r})
seconds = time.perf_counter() - start
assert report.features["f0"].current_rows == {rows}, report.features["f0"].current_rows
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(report.drifted))
"""


def _write_parquet(path: Path, rows: int, shift: float) -> None:
    """rows x 20 numeric columns, written 1,000,000 rows at a time (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(int(shift * 10))
    writer = None
    for start in range(0, rows, 1_000_000):
        size = min(1_000_000, rows - start)
        table = pa.table(
            {f"f{i}": rng.normal(i + (shift if i < 2 else 0), 1 + i, size) for i in range(20)}
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    assert writer is not None
    writer.close()


def scale() -> list[Row]:
    """drift() over a 10M x 20 Parquet window in a child process: time and peak memory."""
    import subprocess
    import tempfile
    import time

    import duckdb

    rows = 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        reference, current = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        _write_parquet(reference, 1_000_000, 0.0)
        _write_parquet(current, rows, 0.3)
        code = SCALE_CHILD.format(
            src=str(Path(__file__).resolve().parents[1] / "src"),
            reference=str(reference),
            current=str(current),
            rows=rows,
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        seconds, peak_mb, drifted = done.stdout.split()
        con = duckdb.connect()
        columns = ", ".join(f"count(f{i}), min(f{i}), max(f{i}), avg(f{i})" for i in range(20))
        start = time.perf_counter()
        source = str(current).replace("'", "''")
        con.execute(f"SELECT {columns} FROM read_parquet('{source}')").fetchall()
        scan = time.perf_counter() - start
        con.close()
    figures = [
        Row("drift(), 10M x 20 Parquet window vs 1M rows", float(seconds), scan, "<= 30 s", "s"),
        Row("peak memory of that run (RSS)", float(peak_mb), 2048.0, "<= 2,048 MB", "MB"),
    ]
    print_table("Drift over a 10,000,000-row window (reference: one DuckDB scan)", figures)
    print(f"drifted features: {drifted} of 20 (f0 and f1 move by 0.3 and 0.15 sd)")
    return figures


def main() -> None:
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    choices = ("speed", "quality", "cbpe", "scale", "sketch", "window")
    if only is not None and only not in choices:
        raise SystemExit(f"--only takes {', '.join(choices)}")
    if only == "sketch":
        from _sketch_bench import sketch

        sketch()
        return
    if only == "scale":
        scale()
        return
    if only == "window":
        from _monitoring_window import window

        window()
        return
    if only in (None, "speed"):
        speed()
    if only in (None, "quality"):
        quality()
    if only in (None, "cbpe"):
        import bench_monitoring_perf

        bench_monitoring_perf.main()


if __name__ == "__main__":
    main()
