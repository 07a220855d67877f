"""Serving benchmark: the prediction service over HTTP, against in-process predict.

Registers a scaled LogisticRegression and a 100-tree RandomForest on breast_cancer,
exports both to ONNX, and serves them with `loopline.serving.serve` (2 uvicorn
workers, in a subprocess): "logreg" and "forest" through onnxruntime (the default),
"logreg-native" and "forest-native" through scikit-learn. Load generators then
measure, one phase after another:

- one client (concurrency 1), one-row requests: p50 and p99 latency;
- 8 concurrent clients, one-row requests: requests/s and p99;
- 8 concurrent clients, 100-row requests: rows/s.

Every server writes the prediction log (the default). What logging costs: two
logistic-regression servers, with and without the log, both up, measured in turns
(LOG_ROUNDS rounds, 8 clients, fresh connections each turn) and compared by their
median requests/s, with 2 workers each and again with 1. Turns matter: with 2 workers,
how the 8 connections happen to spread over the workers moves a phase's throughput by
up to ~20 %, more than logging does; 1 worker has no such spread.

What log durability costs: "sync" (each answer waits until its record is written to the
journal file, concurrent answers sharing one write) and "fsync" (the same, plus one
fdatasync per group): three logistic-regression servers, "fast", "sync" and "fsync", all
up, measured in turns the same way, each compared with "fast" by its median requests/s
and p99 at 8 clients and p99 at 1 client (which pays a whole write, or fdatasync, per
request). `--only durability` runs just this comparison.

Many rows (`--only bulk` for just this): the logistic regression via ONNX, 100-row bodies
(rows/s) and one-row bodies (requests/s) at 8 clients, 5 rounds, medians, beside the
in-process `ServedModel.predict_rows` of the same rows.

Served as logged (`--only as-logged` for just this): the demo's scikit-learn models, a
LightGBM and an XGBoost classifier, logged without an ONNX export and served with
`--runtime auto`, measured with wrk against a bare uvicorn + httptools endpoint in the
same run (see _serving_as_logged).

Two load generators: httpx's AsyncClient, and a lean one on asyncio streams (keep-alive
HTTP/1.1, a fixed request, the response read by its Content-Length). On this machine
httpx spends ~1.2-1.7 ms of CPU per request itself, so it measures httpx about as much
as the server; the lean client costs a small fraction of that. Both run on the same 2
cores as the two server workers: every figure includes the client's own CPU time.

Next to each figure: the in-process time of one LoadedModel.predict on the same row
(a one-row DataFrame); below the table, the raw model's predict on a one-row numpy
array and the service's own `ServedModel.predict_rows` on one JSON row.

Run: `python benchmarks/bench_serving.py` (about 6 minutes; `--seconds 3` for a quick
look; `--client lean` to skip httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, print_table
from _serving_as_logged import measure_as_logged

SERVER = """
import json, sys
from loopline.serving import serve
refs, onnx, log = json.loads(sys.argv[1]), sys.argv[3] != "native", sys.argv[3] != "no-log"
workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
durability = sys.argv[5] if len(sys.argv) > 5 else "fast"
serve(
    refs, port=int(sys.argv[2]), workers=workers, prefer_onnx=onnx, log_predictions=log,
    log_durability=durability, log_level="warning",
)
"""
# one server (2 workers) per runtime, one after the other; every one writes the
# prediction log
SERVERS = {
    "onnx": {"logreg": "bench-logreg/1", "forest": "bench-forest/1"},
    "native": {"logreg-native": "bench-logreg/1", "forest-native": "bench-forest/1"},
}
LOG_ROUNDS = 5
BULK_ROUNDS = 5


@dataclass
class Phase:
    """One load phase's results."""

    requests: int
    seconds: float
    latencies: list[float]  # seconds
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


async def load(url: str, body: bytes, concurrency: int, seconds: float) -> Phase:
    """`concurrency` clients posting `body` back to back for `seconds`."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for _ in range(20):  # warm the connections (and both workers) up
            await asyncio.gather(
                *(client.post(url, content=body, headers=headers) for _ in range(concurrency))
            )
        stop = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                answer = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                errors += answer.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return Phase(len(latencies), elapsed, latencies, errors)


async def lean_load(url: str, body: bytes, concurrency: int, seconds: float) -> Phase:
    """Like `load`, with a minimal HTTP/1.1 client on asyncio streams."""
    host, port_path = url.removeprefix("http://").split(":", 1)
    port, path = port_path.split("/", 1)
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0

    async def one_client(stop: float, record: bool) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += not head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    warm = time.perf_counter() + 0.5
    await asyncio.gather(*(one_client(warm, False) for _ in range(concurrency)))
    began = time.perf_counter()
    await asyncio.gather(*(one_client(began + seconds, True) for _ in range(concurrency)))
    return Phase(len(latencies), time.perf_counter() - began, latencies, errors)


def per_call_ms(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Median time of one call in milliseconds, over repeated batches."""
    fn()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, timeout: float = 120.0) -> None:
    """Until 20 fresh connections in a row find a ready worker (both workers are up)."""
    import httpx

    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 20:
        if time.monotonic() > deadline:
            raise SystemExit(f"the server at {url} did not become ready")
        try:
            streak = streak + 1 if httpx.get(f"{url}/health/ready").status_code == 200 else 0
        except httpx.TransportError:
            streak = 0
        time.sleep(0.05)


def register(root: Path) -> tuple[Any, dict[str, Any]]:
    """Train, register and export both models; returns the features and the raw models."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import loopline as ll

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    models = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
    }
    for name, model in models.items():
        model.fit(features, target)
        ll.models.log_model(model, name=f"bench-{name}", input_example=features.head(5))
        ll.models.export(f"bench-{name}/1", data=features)
    return features, models


def in_process(features: Any, raw: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Milliseconds per one-row predict, in this process, for each model."""
    import loopline as ll
    from loopline.serving import load_served

    one = features.iloc[[0]]
    row = one.to_dict(orient="records")
    array = one.to_numpy()
    figures: dict[str, dict[str, float]] = {}
    for name, model in raw.items():
        loaded = ll.models.load(f"bench-{name}/1")
        onnx = load_served(f"bench-{name}/1")
        native = load_served(f"bench-{name}/1", prefer_onnx=False)
        with warnings.catch_warnings():  # a pipeline fitted on a DataFrame warns on arrays
            warnings.simplefilter("ignore")
            raw_ms = per_call_ms(lambda m=model: m.predict(array))
        figures[name] = {
            "LoadedModel.predict, 1-row DataFrame": per_call_ms(lambda m=loaded: m.predict(one)),
            "raw predict, 1-row numpy array": raw_ms,
            "served via onnxruntime, 1 JSON row": per_call_ms(lambda s=onnx: s.predict_rows(row)),
            "served natively, 1 JSON row": per_call_ms(lambda s=native: s.predict_rows(row)),
        }
    return figures


def http_parser() -> str:
    """The HTTP parser uvicorn picks here: httptools if installed, else h11 (pure Python)."""
    import importlib.util

    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def measure(
    base: str, deployment: str, bodies: tuple[bytes, bytes], client: str, seconds: float
) -> tuple[Phase, Phase, Phase]:
    """The three phases for one deployment with one load generator."""
    run = load if client == "httpx" else lean_load
    url = f"{base}/v1/deployments/{deployment}/predict"
    one, hundred = bodies
    alone = asyncio.run(run(url, one, 1, seconds))
    busy = asyncio.run(run(url, one, 8, seconds))
    bulk = asyncio.run(run(url, hundred, 8, seconds / 2))
    failed = alone.errors + busy.errors + bulk.errors
    if failed:
        print(f"{deployment} ({client} client): {failed} requests failed")
    return alone, busy, bulk


def figures(
    label: str, phases: tuple[Phase, Phase, Phase], inside: float, goals: bool
) -> list[Row]:
    """Table rows for one deployment and client; `inside` is the in-process predict (ms)."""
    alone, busy, bulk = phases
    return [
        Row(f"{label}: p50, 1 client", alone.percentile_ms(0.5), inside, "<= 2 ms" * goals),
        Row(f"{label}: p99, 1 client", alone.percentile_ms(0.99), inside, "<= 5 ms" * goals),
        Row(f"{label}: p99, 8 clients", busy.percentile_ms(0.99), inside, "<= 20 ms" * goals),
        Row(
            f"{label}: requests/s, 8 clients",
            busy.per_second,
            1000.0 / inside,
            ">= 1,500/s" * goals,
            unit="/s",
            higher_is_better=True,
        ),
        Row(
            f"{label}: rows/s, 100-row requests",
            bulk.per_second * 100,
            1000.0 / inside,
            "",
            unit="/s",
            higher_is_better=True,
        ),
    ]


def bulk(root: Path, features: Any, seconds: float, rounds: int = BULK_ROUNDS) -> list[Row]:
    """The logistic regression via ONNX (2 workers, prediction log on): rows/s for 100-row
    bodies and requests/s for one-row bodies at 8 clients, medians of `rounds` rounds,
    beside the in-process `ServedModel.predict_rows` of the same 100 rows (rows/s on one
    core)."""
    from loopline.serving import load_served

    rows = features.iloc[:100].to_dict(orient="records")
    hundred = json.dumps({"inputs": rows}).encode()
    one = json.dumps({"inputs": rows[:1]}).encode()
    served = load_served("bench-logreg/1")
    inside_rows_s = 100 / (per_call_ms(lambda: served.predict_rows(rows)) / 1000)
    port = free_port()
    deployments = json.dumps({"logreg": "bench-logreg/1"})
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, deployments, str(port), "onnx"], cwd=root
    )
    bulk_rates, one_rates = [], []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        url = f"{base}/v1/deployments/logreg/predict"
        for _ in range(rounds):
            bulk_rates.append(asyncio.run(lean_load(url, hundred, 8, seconds)).per_second * 100)
            one_rates.append(asyncio.run(lean_load(url, one, 8, seconds)).per_second)
    finally:
        server.terminate()
        server.wait(30)
    print(f"100-row bodies, rows/s per round: {_rounded(bulk_rates)}")
    print(f"one-row bodies, requests/s per round: {_rounded(one_rates)}")
    return [
        Row(
            "logreg via ONNX: rows/s, 100-row bodies, 8 clients (vs in-process predict_rows)",
            statistics.median(bulk_rates),
            inside_rows_s,
            ">= 150,000/s",
            unit="/s",
            higher_is_better=True,
        ),
        Row(
            "logreg via ONNX: requests/s, one-row bodies, 8 clients (same server)",
            statistics.median(one_rates),
            1000.0 / per_call_ms(lambda: served.predict_rows(rows[:1])),
            ">= 3,000/s",
            unit="/s",
            higher_is_better=True,
        ),
    ]


def logging_cost(root: Path, body: bytes, seconds: float, workers: int) -> Row:
    """Requests/s at 8 clients with the prediction log against without it (medians)."""
    servers = {}
    try:
        for mode in ("onnx", "no-log"):
            port = free_port()
            deployments = json.dumps({"logreg": "bench-logreg/1"})
            command = [sys.executable, "-c", SERVER, deployments, str(port), mode, str(workers)]
            servers[mode] = (subprocess.Popen(command, cwd=root), f"http://127.0.0.1:{port}")
        for _, base in servers.values():
            wait_ready(base)
        rates: dict[str, list[float]] = {"onnx": [], "no-log": []}
        for _ in range(LOG_ROUNDS):
            for mode, (_, base) in servers.items():
                url = f"{base}/v1/deployments/logreg/predict"
                rates[mode].append(asyncio.run(lean_load(url, body, 8, seconds / 2)).per_second)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(30)
    logged, plain = (statistics.median(rates[mode]) for mode in ("onnx", "no-log"))
    print(f"{workers} worker(s), logging on, requests/s per round:  {_rounded(rates['onnx'])}")
    print(f"{workers} worker(s), logging off, requests/s per round: {_rounded(rates['no-log'])}")
    return Row(
        f"logreg, {workers} worker{'s' * (workers > 1)}: requests/s with the prediction log "
        "(vs without, medians)",
        logged,
        plain,
        ">= 0.9x",
        unit="/s",
        higher_is_better=True,
    )


def durability_cost(root: Path, body: bytes, seconds: float, workers: int) -> list[Row]:
    """Requests/s and p99 with log durability "sync" and "fsync" against "fast" (medians
    of turns)."""
    modes = ("fast", "sync", "fsync")
    servers = {}
    try:
        for mode in modes:
            port = free_port()
            deployments = json.dumps({"logreg": "bench-logreg/1"})
            command = [sys.executable, "-c", SERVER, deployments, str(port), "onnx"]
            command += [str(workers), mode]
            servers[mode] = (subprocess.Popen(command, cwd=root), f"http://127.0.0.1:{port}")
        for _, base in servers.values():
            wait_ready(base)
        busy: dict[str, list[Phase]] = {mode: [] for mode in modes}
        alone: dict[str, list[Phase]] = {mode: [] for mode in modes}
        for _ in range(LOG_ROUNDS):
            for mode, (_, base) in servers.items():
                url = f"{base}/v1/deployments/logreg/predict"
                busy[mode].append(asyncio.run(lean_load(url, body, 8, seconds / 2)))
                alone[mode].append(asyncio.run(lean_load(url, body, 1, seconds / 4)))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(30)
    for mode in modes:
        rates = _rounded([phase.per_second for phase in busy[mode]])
        p99 = [round(phase.percentile_ms(0.99), 2) for phase in busy[mode]]
        print(f"{workers} worker(s), durability {mode}, 8 clients: requests/s {rates}, p99 {p99}")
        failed = sum(phase.errors for phase in busy[mode] + alone[mode])
        if failed:
            print(f"{workers} worker(s), durability {mode}: {failed} requests failed")

    def median(phases: dict[str, list[Phase]], figure: Callable[[Phase], float]) -> list[float]:
        return [statistics.median(figure(phase) for phase in phases[mode]) for mode in modes]

    rates = median(busy, lambda phase: phase.per_second)
    p99s = median(busy, lambda phase: phase.percentile_ms(0.99))
    alones = median(alone, lambda phase: phase.percentile_ms(0.99))
    rows = []
    for index, mode in enumerate(modes[1:], 1):
        label = f"logreg, {workers} worker{'s' * (workers > 1)}, log durability {mode} (vs fast)"
        rows += [
            Row(
                f"{label}: requests/s, 8 clients",
                rates[index],
                rates[0],
                ">= 0.8x to be the default",
                unit="/s",
                higher_is_better=True,
            ),
            Row(f"{label}: p99, 8 clients", p99s[index], p99s[0], ""),
            Row(f"{label}: p99, 1 client", alones[index], alones[0], ""),
        ]
    return rows


def _rounded(values: list[float]) -> list[int]:
    return [round(value) for value in values]


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--client", choices=["both", "lean", "httpx"], default="both")
    parser.add_argument("--only", choices=["all", "durability", "as-logged", "bulk"], default="all")
    options = parser.parse_args()
    import httpx

    from loopline.config import init_project
    from loopline.project import close, configure

    clients = ["lean", "httpx"] if options.client == "both" else [options.client]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "bench"
        root.mkdir()
        init_project(root)
        os.chdir(root)
        configure(project=root)
        features, raw = register(root)
        reference = in_process(features, raw)
        close()
        if options.only in ("all", "as-logged"):
            rows += measure_as_logged(root, features, options.seconds / 2)
        if options.only in ("all", "bulk"):
            rows += bulk(root, features, options.seconds / 2)
        one = json.dumps({"inputs": features.iloc[[0]].to_dict(orient="records")}).encode()
        hundred = json.dumps({"inputs": features.iloc[:100].to_dict(orient="records")}).encode()
        for runtime, deployments in SERVERS.items() if options.only == "all" else ():
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER, json.dumps(deployments), str(port), runtime],
                cwd=root,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base)
                for deployment in deployments:
                    meta = httpx.get(f"{base}/v2/models/{deployment}").json()["parameters"]
                    print(f"{deployment}: {meta['runtime']} ({meta['path']})")
                    model = deployment.split("-")[0]
                    native = runtime == "native"
                    inside = reference[model]["LoadedModel.predict, 1-row DataFrame"]
                    for client in ["lean"] if runtime != "onnx" else clients:
                        seconds = options.seconds / 2 if native else options.seconds
                        phases = measure(base, deployment, (one, hundred), client, seconds)
                        goals = model == "logreg" and runtime == "onnx"
                        rows += figures(f"{deployment} ({client} client)", phases, inside, goals)
            finally:
                server.terminate()
                server.wait(30)
        for workers in (2, 1) if options.only == "all" else ():
            rows.append(logging_cost(root, one, options.seconds, workers))
        for workers in (2, 1) if options.only in ("all", "durability") else ():
            rows += durability_cost(root, one, options.seconds, workers)
    print_table(
        f"Serving over HTTP (2 workers, uvicorn with {http_parser()}) against in-process "
        "LoadedModel.predict of one row",
        rows,
    )
    print("reference: LoadedModel.predict on a one-row DataFrame in this process (ms), and")
    print("for the /s figures the calls per second that time allows on one core")
    for model, times in reference.items():
        print(f"in-process, {model}:")
        for figure, value in times.items():
            print(f"  {figure}: {value:.3f} ms")
    print("Load generators and the two server workers share the machine's 2 cores.")
    return rows


if __name__ == "__main__":
    main()
