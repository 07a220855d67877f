"""Prediction latency: single rows and one batch, within a fixed time budget.

Single-row timings call `predict` on one-row frames sampled (seeded) from the data; the
batch timing uses up to BATCH_ROWS rows. Both stop early when their budget is spent so that a
slow model still finishes in well under two seconds (plus one call of each kind).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BATCH_ROWS = 1_000
SINGLE_BUDGET_S = 0.8
BATCH_BUDGET_S = 0.4
MAX_BATCH_REPEATS = 20


def latency(
    predict: Callable[[pd.DataFrame], Any], features: pd.DataFrame, *, repeats: int, seed: int
) -> dict[str, Any]:
    """{"p50_ms", "p99_ms", "repeats", "batch_rows", "batch_p50_ms", "batch_p99_ms",
    "batch_repeats", "rows_per_second"}."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(features), size=max(repeats, 1))
    predict(features.iloc[rows[:1]])  # warm-up: caches, lazy imports
    single = _timed(predict, (features.iloc[[row]] for row in rows), SINGLE_BUDGET_S)
    batch_rows = min(BATCH_ROWS, len(features))
    batch = features.iloc[np.sort(rng.choice(len(features), size=batch_rows, replace=False))]
    predict(batch)
    batch_times = _timed(predict, (batch for _ in range(MAX_BATCH_REPEATS)), BATCH_BUDGET_S)
    batch_p50 = _percentile(batch_times, 50)
    return {
        "p50_ms": _percentile(single, 50),
        "p99_ms": _percentile(single, 99),
        "repeats": len(single),
        "batch_rows": batch_rows,
        "batch_p50_ms": batch_p50,
        "batch_p99_ms": _percentile(batch_times, 99),
        "batch_repeats": len(batch_times),
        "rows_per_second": batch_rows / (batch_p50 / 1000) if batch_p50 else None,
    }


def _timed(predict: Callable[[pd.DataFrame], Any], frames: Any, budget: float) -> list[float]:
    """Milliseconds per call, stopping once `budget` seconds are spent (after one call)."""
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for frame in frames:
        start = time.perf_counter()
        predict(frame)
        end = time.perf_counter()
        times.append((end - start) * 1000)
        if end > deadline:
            break
    return times


def _percentile(times: list[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(times, q)) if times else None
