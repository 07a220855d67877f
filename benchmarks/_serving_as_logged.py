"""The serving fast path without a manual export (bench_serving.py `--only as-logged`).

Every scikit-learn model of the demo (a 100-tree RandomForest, a GradientBoosting, a
DecisionTree), plus a LightGBM and an XGBoost classifier, is logged with an input example
and NOT exported; one server (2 workers, `--runtime auto`, the default) serves them all,
so each is converted to ONNX at start, once. wrk (or the bench's lean client when wrk is
not installed) then measures, per model, one-row requests at 8 connections: requests/s
and p99 (goal >= 3,000/s, p99 <= 10 ms). Beside them, in the same run: a bare uvicorn +
httptools ASGI endpoint answering a constant JSON body, 2 workers (the ceiling of this
stack here; goal >= 60 % of it), and 100-row bodies at 8 connections in rows/s (goal
>= 150,000 rows/s on the ONNX path) next to the in-process predict of the same 100 rows.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Row

SERVER = """
import json, sys
from loopline.serving import serve
serve(json.loads(sys.argv[1]), port=int(sys.argv[2]), workers=2, log_level="warning")
"""
CEILING = """
BODY = b'{"predictions":[1],"model_version":"ceiling/1"}'
HEAD = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the request body, as a real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.body", "body": BODY})
"""
ROUNDS = 3
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("LOOPLINE_BENCH_BODY")):read("*a")
"""


def fit_models(features: Any, target: Any) -> dict[str, Any]:
    """The demo's scikit-learn models, and a LightGBM and an XGBoost classifier."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    models = {
        "forest": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
        "gboost": GradientBoostingClassifier(random_state=0),
        "tree": DecisionTreeClassifier(max_depth=5, random_state=0),
        "lightgbm": LGBMClassifier(n_estimators=100, verbose=-1),
        "xgboost": XGBClassifier(n_estimators=100, max_depth=4),
    }
    for model in models.values():
        model.fit(features, target)
    return models


def register_as_logged(features: Any, models: dict[str, Any]) -> dict[str, str]:
    """Log each model (input example of 100 rows, no export); {deployment: ref}."""
    import loopline as ll

    refs = {}
    for name, model in models.items():
        version = ll.models.log_model(model, name=f"logged-{name}", input_example=features[:100])
        refs[name] = version.ref
    return refs


def in_process_rows_per_second(refs: dict[str, str], features: Any) -> dict[str, float]:
    """Rows/s of LoadedModel.predict on the same 100 rows, in this process."""
    import loopline as ll

    hundred = features.iloc[:100]
    rates = {}
    for name, ref in refs.items():
        loaded = ll.models.load(ref)
        rates[name] = 100 / (_per_call_s(lambda m=loaded: m.predict(hundred)))
    return rates


def _per_call_s(call: Callable[[], object], seconds: float = 1.0) -> float:
    call()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def wrk_load(url: str, body: bytes, connections: int, seconds: float) -> tuple[float, float]:
    """(requests/s, p99 ms) from wrk with `connections` connections on 2 threads."""
    with tempfile.TemporaryDirectory() as scratch:
        script, payload = Path(scratch) / "post.lua", Path(scratch) / "body.json"
        script.write_text(WRK_SCRIPT)
        payload.write_bytes(body)
        threads = str(min(2, connections))
        result = subprocess.run(
            [
                "wrk",
                "-t",
                threads,
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            env={"LOOPLINE_BENCH_BODY": str(payload), "PATH": "/usr/bin:/bin"},
            timeout=seconds + 60,
        )
    out = result.stdout
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}: {result.stderr or out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        print(f"wrk: some answers were not 2xx for {url}:\n{out}")
    return rate, p99


def _wrk_ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def lean(url: str, body: bytes, connections: int, seconds: float) -> tuple[float, float]:
    """The same pair from the bench's lean asyncio client."""
    import asyncio

    from bench_serving import lean_load

    phase = asyncio.run(lean_load(url, body, connections, seconds))
    return phase.per_second, phase.percentile_ms(0.99)


def start(code: str, args: list[str], root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=root)


def start_ceiling(port: int, root: Path) -> subprocess.Popen[bytes]:
    """uvicorn with httptools and 2 workers on an ASGI app answering a constant body."""
    (root / "_ceiling_app.py").write_text(CEILING)
    command = [sys.executable, "-m", "uvicorn", "_ceiling_app:app", "--port", str(port)]
    command += ["--workers", "2", "--http", "httptools", "--log-level", "warning"]
    return subprocess.Popen([*command, "--no-access-log"], cwd=root)


def measure_as_logged(root: Path, features: Any, seconds: float) -> list[Row]:
    """The table rows of the as-logged comparison (see the module docstring)."""
    from bench_serving import free_port, wait_ready
    from loopline.project import close, configure

    configure(project=root)
    models = fit_models(features, _target(features))
    refs = register_as_logged(features, models)
    inside = in_process_rows_per_second(refs, features)
    close()
    tool = wrk_load if shutil.which("wrk") else lean
    print(f"as-logged phase: load from {'wrk' if tool is wrk_load else 'the lean client'}")
    one = json.dumps({"inputs": features.iloc[[0]].to_dict(orient="records")}).encode()
    hundred = json.dumps({"inputs": features.iloc[:100].to_dict(orient="records")}).encode()
    port, ceiling_port = free_port(), free_port()
    began = time.perf_counter()
    server = start(SERVER, [json.dumps(refs), str(port)], root)
    ceiling = start_ceiling(ceiling_port, root)
    base, bare = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ceiling_port}"
    try:
        wait_ready(base, timeout=600)
        print(f"as-logged server ready in {time.perf_counter() - began:.1f} s (conversions)")
        _wait_bare(bare)
        runtimes = _runtimes(base, refs)
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in [*refs, "ceiling"]}
        bulk: dict[str, list[float]] = {name: [] for name in refs}
        for _ in range(ROUNDS):  # turns: the ceiling and every model share the same noise
            rates["ceiling"].append(tool(f"{bare}/", one, 8, seconds))
            for name in refs:
                url = f"{base}/v1/deployments/{name}/predict"
                rates[name].append(tool(url, one, 8, seconds))
                bulk[name].append(tool(url, hundred, 8, seconds / 2)[0] * 100)
    finally:
        for process in (server, ceiling):
            process.terminate()
            process.wait(30)
    ll_ceiling = statistics.median(rate for rate, _ in rates["ceiling"])
    ceiling_p99 = statistics.median(p99 for _, p99 in rates["ceiling"])
    print(
        f"bare uvicorn + httptools, constant JSON, 2 workers: {ll_ceiling:,.0f} req/s, p99 "
        f"{ceiling_p99:.2f} ms (per round: {[round(r) for r, _ in rates['ceiling']]})"
    )
    rows = []
    for name in refs:
        rate = statistics.median(r for r, _ in rates[name])
        p99 = statistics.median(p for _, p in rates[name])
        label = f"{name} as logged ({runtimes[name]})"
        print(f"{label}: req/s per round {[round(r) for r, _ in rates[name]]}")
        rows += [
            Row(
                f"{label}: requests/s, 1-row, c=8 (vs bare uvicorn)",
                rate,
                ll_ceiling,
                ">= 3,000/s, >= 0.6x",
                unit="/s",
                higher_is_better=True,
            ),
            Row(f"{label}: p99, 1-row, c=8 (vs bare uvicorn)", p99, ceiling_p99, "<= 10 ms"),
            Row(
                f"{label}: rows/s, 100-row bodies, c=8 (vs in-process predict)",
                statistics.median(bulk[name]),
                inside[name],
                ">= 150,000/s",
                unit="/s",
                higher_is_better=True,
            ),
        ]
    return rows


def _target(features: Any) -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).target.loc[features.index]


def _runtimes(base: str, refs: dict[str, str]) -> dict[str, str]:
    import httpx

    found = {}
    for name in refs:
        meta = httpx.get(f"{base}/v2/models/{name}").json()["parameters"]
        found[name] = meta["runtime"]
    return found


def _wait_bare(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(url + "/", content=b"{}")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the bare uvicorn endpoint did not start")
