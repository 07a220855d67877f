"""Performance before labels: CBPE's estimate against the realised accuracy and ROC AUC on
a stream whose inputs shift.

A classifier is trained on 20,000 rows of a seeded `make_classification` problem; another
20,000 unshifted labelled rows are the calibration (reference) data. The stream is ten
chunks of 1,000 rows drawn from a further pool of 160,000 rows with weights
exp(beta * (x0 + x1) / sqrt(2)), beta rising from 0 to 2: the inputs move (covariate
shift) while the relation from inputs to labels stays, which is what CBPE assumes. For each
chunk the estimate without calibration data ("raw") and with it ("calibrated") is set
against the realised value from the chunk's labels; the mean absolute error over the
chunks is the figure (percentage points). Binary and 3-class problems, two models each: a
histogram gradient boosting model and Gaussian naive Bayes (badly calibrated on purpose).

Run: `python benchmarks/bench_monitoring_perf.py [--small]` (`--small`: 5 chunks).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, print_table

CHUNKS = 5 if "--small" in sys.argv else 10
CHUNK_ROWS = 1_000
TRAIN_ROWS = REFERENCE_ROWS = 20_000
POOL_ROWS = 160_000


def stream(classes: int, seed: int) -> dict[str, Any]:
    """Training, reference and shifted chunks of one generated problem."""
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=TRAIN_ROWS + REFERENCE_ROWS + POOL_ROWS,
        n_features=10,
        n_informative=5,
        n_redundant=2,
        n_classes=classes,
        n_clusters_per_class=2,
        flip_y=0.03,
        class_sep=0.8,
        shuffle=False,  # the informative features come first: x0 and x1 are shifted
        random_state=seed,
    )
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    reference = slice(TRAIN_ROWS, TRAIN_ROWS + REFERENCE_ROWS)
    pool_x, pool_y = x[TRAIN_ROWS + REFERENCE_ROWS :], y[TRAIN_ROWS + REFERENCE_ROWS :]
    direction = (pool_x[:, 0] + pool_x[:, 1]) / np.sqrt(2)
    direction = (direction - direction.mean()) / direction.std()
    rng = np.random.default_rng(seed + 1)
    chunks = []
    for beta in np.linspace(0.0, 2.0, CHUNKS):
        weights = np.exp(beta * direction)
        rows = rng.choice(len(pool_y), CHUNK_ROWS, replace=False, p=weights / weights.sum())
        chunks.append((float(beta), pool_x[rows], pool_y[rows]))
    return {
        "train": (x[:TRAIN_ROWS], y[:TRAIN_ROWS]),
        "reference": (x[reference], y[reference]),
        "chunks": chunks,
    }


def measure(name: str, model: Any, data: dict[str, Any]) -> tuple[list[Row], list[list[str]]]:
    """Fit `model`, then estimate and realise every chunk; (summary rows, per-chunk lines)."""
    import numpy as np

    from loopline.monitoring._estimate import calibrate, estimate_performance
    from loopline.monitoring._performance import realised_performance

    model.fit(*data["train"])
    classes = list(model.classes_)
    reference_x, reference_y = data["reference"]
    reference_proba = model.predict_proba(reference_x)
    start = time.perf_counter()
    calibration = calibrate(reference_y, reference_proba, classes)
    fit_seconds = time.perf_counter() - start
    task = "binary" if len(classes) == 2 else "multiclass"
    short_name = "".join(word[0] for word in name.split()).upper()  # "binary naive Bayes": BNB
    errors: dict[str, list[float]] = {
        key: [] for key in ("acc raw", "acc cal", "auc raw", "auc cal")
    }
    lines, unreliable, seconds = [], 0, []
    for beta, x, y in data["chunks"]:
        proba, pred = model.predict_proba(x), model.predict(x)
        realised = realised_performance(task, y, pred, proba, classes).metrics
        raw = estimate_performance(proba, classes, predictions=pred).metrics
        start = time.perf_counter()
        estimate = estimate_performance(proba, classes, calibration=calibration, predictions=pred)
        seconds.append(time.perf_counter() - start)
        if estimate.reliable is False:
            unreliable += 1
            print(f"{name}, beta {beta:.2f}: unreliable: {estimate.reason}")
        calibrated = estimate.metrics
        for metric, short in (("accuracy", "acc"), ("roc_auc", "auc")):
            errors[f"{short} raw"].append(abs(raw[metric] - realised[metric]))
            errors[f"{short} cal"].append(abs(calibrated[metric] - realised[metric]))
        lines.append(
            [short_name, f"{beta:.2f}"]
            + [f"{v:.3f}" for v in (realised["accuracy"], raw["accuracy"], calibrated["accuracy"])]
            + [f"{v:.3f}" for v in (realised["roc_auc"], raw["roc_auc"], calibrated["roc_auc"])]
            + [str(estimate.reliable)]
        )
    label = f"{name}: CBPE mean abs error over {len(lines)} chunks of {CHUNK_ROWS:,}"
    rows = [
        Row(
            f"{label}, accuracy (calibrated vs raw)",
            100 * float(np.mean(errors["acc cal"])),
            100 * float(np.mean(errors["acc raw"])),
            "<= 2 pts",
            "pts",
        ),
        Row(
            f"{label}, ROC AUC (calibrated vs raw)",
            100 * float(np.mean(errors["auc cal"])),
            100 * float(np.mean(errors["auc raw"])),
            "<= 2 pts",
            "pts",
        ),
        Row(
            f"{name}: estimate per chunk vs fitting the calibration once "
            f"(chunks flagged unreliable: {unreliable})",
            1000 * float(np.median(seconds)),
            1000 * fit_seconds,
            "(context)",
            "ms",
        ),
    ]
    return rows, lines


def main() -> list[Row]:
    from rich.console import Console
    from rich.table import Table
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.naive_bayes import GaussianNB

    rows: list[Row] = []
    table = Table(title="CBPE per chunk: realised / raw estimate / calibrated estimate")
    for column in (
        "model",
        "beta",
        "acc",
        "acc raw",
        "acc cal",
        "auc",
        "auc raw",
        "auc cal",
        "reliable",
    ):
        table.add_column(column, justify="right")
    for classes, seed in ((2, 0), (3, 1)):
        data = stream(classes, seed)
        kind = "binary" if classes == 2 else "3-class"
        for model_name, model in (
            ("gradient boosting", HistGradientBoostingClassifier(max_iter=100, random_state=0)),
            ("naive Bayes", GaussianNB()),
        ):
            found, lines = measure(f"{kind} {model_name}", model, data)
            rows.extend(found)
            for line in lines:
                table.add_row(*line)
    Console().print(table)
    print_table("Performance estimated before labels (CBPE)", rows)
    return rows


if __name__ == "__main__":
    main()
