"""The runs area's fixture data (phase 2a): written into `ui_project` by conftest's `fill`.

Experiment "charts":
- "long": metric `loss` of LONG_POINTS steps (a slow sine with one spike up at
  SPIKE_STEP and one dip at DIP_STEP, one NaN step), `acc` of 3 points; its code version
  is dirty with a diff, its packages listed; artifacts of every preview kind and the
  hostile ones (an HTML report and an SVG that hold scripts, a CSV over the preview's
  head, a binary file, a name with '%'); lineage: a dataset version in, a model version
  and a data frame out.
- "cmp-a", "cmp-b", "cmp-c": params `model` (the same in all three), `lr` (differs) and
  `note` (XSS_PARAM in cmp-c only); metrics `auc` (differs) and `loss` of 50 steps each.
Written through the stores (no git, no pip): well under a second besides the long
metric (~0.5 s on SQLite).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

LONG_POINTS = 20_000
SPIKE_STEP, SPIKE = 12_345, 50.0
DIP_STEP, DIP = 7_777, -50.0
NAN_STEP = 100
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
XSS_PARAM = '"><img src=x onerror=alert(5)>'
PATCH = (
    "diff --git a/train.py b/train.py\n"
    "index 0123456..89abcde 100644\n"
    "--- a/train.py\n+++ b/train.py\n"
    "@@ -1,2 +1,2 @@\n"
    "-lr = 0.1\n+lr = 0.01  # <script>alert(6)</script>\n"
    " epochs = 3\n"
)
PACKAGES = "numpy==2.1.0\npandas==2.2.3\nscikit-learn==1.5.2\n"
HTML_REPORT = (
    "<!doctype html><html><head><style>h1 { color: rgb(0, 128, 0); }</style></head>"
    "<body><h1 id='title'>Evaluation report</h1>"
    "<script>document.title = 'ran'; parent.postMessage('escaped', '*');</script>"
    "</body></html>"
)
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    "<script>alert(7)</script><rect width='10' height='10'/></svg>"
)
BIG_CSV_ROWS = 40_000  # ~1 MB: over the preview's 256 KiB head


@dataclass(frozen=True)
class RunsArea:
    long_run: str
    compared: list[str]  # cmp-a, cmp-b, cmp-c
    artifacts: dict[str, str]  # kind -> artifact path of the long run


def loss_at(step: int) -> float:
    """The long run's loss at `step` (NaN at NAN_STEP)."""
    if step == SPIKE_STEP:
        return SPIKE
    if step == DIP_STEP:
        return DIP
    if step == NAN_STEP:
        return math.nan
    return math.sin(step / 1000)


def png_bytes() -> bytes:
    """A valid 2x2 PNG (built by hand: no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def parquet_bytes() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": list(range(500)), "label": [f"<b>{i}</b>" for i in range(500)]})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def fill_runs(opened: Any) -> RunsArea:
    from loopline.store import CodeVersion, Direction, LinkKind

    runs, blobs = opened.metadata.runs, opened.artifacts
    experiment = runs.get_or_create_experiment("charts")
    patch = blobs.put_bytes(PATCH.encode())
    packages = blobs.put_bytes(PACKAGES.encode())
    files = {
        "image": ("plots/roc.png", png_bytes()),
        "csv": ("data/sample.csv", b"id,name,score\n1,<b>ana</b>,0.5\n2,ben,0.7\n"),
        "big_csv": (
            "data/big.csv",
            b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(BIG_CSV_ROWS)),
        ),
        "json": ("metrics.json", json.dumps({"auc": 0.9, "note": "<script>x</script>"}).encode()),
        "text": ("logs/train.log", b"epoch 1 loss=0.5\nepoch 2 <b>loss</b>=0.3\n"),
        "html": ("reports/eval.html", HTML_REPORT.encode()),
        "svg": ("plots/evil.svg", SVG.encode()),
        "binary": ("model.bin", bytes(range(256)) * 4),
        "parquet": ("data/head.parquet", parquet_bytes()),
        "percent": ("notes/100%.txt", b"all of it\n"),
    }
    links = [("_loopline/code.patch", patch.hash, patch.size)]
    links.append(("_loopline/requirements.txt", packages.hash, packages.size))
    for name, data in files.values():
        blob = blobs.put_bytes(data)
        links.append((name, blob.hash, blob.size))
    long_run = runs.create_run(
        experiment.id,
        name="long",
        user="ana",
        code=CodeVersion("feedface" * 5, "exp/lr", True, patch.hash),
        python_version="3.12.7",
        packages_hash=packages.hash,
        params={"model": "rf"},
        artifacts=links,
    )
    points = [
        (long_run.id, "loss", loss_at(step), step, START_MS + step * 100)
        for step in range(LONG_POINTS)
    ]
    points += [(long_run.id, "acc", 0.5 + step / 10, step, START_MS + step) for step in range(3)]
    runs.log_metric_points(points)
    dataset, _ = opened.metadata.datasets.add_version(
        "credit", manifest_hash="a1" * 32, author="ana", file_count=1, total_size=8
    )
    runs.add_links(
        long_run.id, Direction.INPUT, LinkKind.DATASET_VERSION, [("credit", dataset.id, 8)]
    )
    runs.add_links(
        long_run.id, Direction.OUTPUT, LinkKind.MODEL_VERSION, [("churn/3", "f" * 32, 9)]
    )
    compared = []
    for index, (name, lr, auc) in enumerate((("cmp-a", 0.1, 0.8), ("cmp-b", 0.01, 0.9))):
        compared.append(_compared(runs, experiment.id, name, lr, auc, index))
    compared.append(_compared(runs, experiment.id, "cmp-c", 0.001, 0.85, 2, note=XSS_PARAM))
    return RunsArea(long_run.id, compared, {kind: name for kind, (name, _) in files.items()})


def _compared(
    runs: Any, experiment_id: str, name: str, lr: float, auc: float, index: int, **params: Any
) -> str:
    run = runs.create_run(
        experiment_id, name=name, user="ben", params={"model": "gb", "lr": lr, **params}
    )
    points = [
        (run.id, "loss", 1 / (step + 1 + index), step, START_MS + step * 1000) for step in range(50)
    ]
    runs.log_metric_points([*points, (run.id, "auc", auc, 0, START_MS)])
    return str(run.id)
