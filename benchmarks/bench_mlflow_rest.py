"""MLflow REST API benchmark: the real `mlflow` client logging to loopline's server.

Each figure is printed next to the same work done in-process, in the same run:
- log_batch throughput: `MlflowClient.log_batch` with POINTS metric points (the client
  sends them 1,000 a request) to `/api/2.0/mlflow/runs/log-batch` of a loopline server
  in its own process on SQLite, versus `ll.log_metric` x POINTS + flush in-process on
  SQLite. (The issue's anchor: MLflow's own server took 3,051 log_batch points/s here.)
- log_metric calls: one `MlflowClient.log_metric` request a point, versus one durable
  `ll.log_metric` + `ll.flush()` a point in-process. (Anchor: MLflow's server, 16-46/s.)

Run: `python benchmarks/bench_mlflow_rest.py` (needs mlflow-skinny).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_times, print_table

ROOT = Path(__file__).resolve().parents[1]

POINTS = 20_000
CALLS = 200
REPEAT = 3

# As the `loopline server` command will serve (not on main yet): TCP_NODELAY set, or each
# answer waits ~40 ms for the client's delayed ACK (DESIGN.md, "Measured lessons").
_SERVE = """
import sys, uvicorn
from loopline.project import open_stores, project_settings
from loopline.server import create_app
from loopline.serving.online.server import no_delay_protocol
app = create_app(open_stores(project_settings(sys.argv[1])))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            http=no_delay_protocol(), access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    server = subprocess.Popen([sys.executable, "-c", _SERVE, str(root), str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health").status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the loopline server did not start")


def main() -> None:
    try:
        from mlflow import MlflowClient
    except ImportError:
        print("bench_mlflow_rest: skipped, the mlflow client (mlflow-skinny) is not installed")
        return
    from mlflow.entities import Metric

    import loopline as ll
    from loopline.config import init_project

    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as scratch:
        served, local = Path(scratch) / "served", Path(scratch) / "local"
        for folder in (served, local):
            folder.mkdir()
            init_project(folder)
        server, url = _start_server(served)
        try:
            client = MlflowClient(tracking_uri=url)
            experiment = client.create_experiment("bench")
            now = int(time.time() * 1000)
            points = [Metric("loss", i / POINTS, now + i, i) for i in range(POINTS)]

            def over_http() -> None:
                run = client.create_run(experiment)
                client.log_batch(run.info.run_id, metrics=points)

            def in_process() -> None:
                with ll.Client(project=local) as own, own.start_run("bench"):
                    for i in range(POINTS):
                        own.log_metric("loss", i / POINTS, step=i)

            http_s, local_s = median_times([over_http, in_process], REPEAT)
            run = client.create_run(experiment)

            def calls_over_http() -> None:
                for i in range(CALLS):
                    client.log_metric(run.info.run_id, "auc", i / CALLS, step=i)

            def durable_calls() -> None:
                with ll.Client(project=local) as own, own.start_run("bench"):
                    for i in range(CALLS):
                        own.log_metric("auc", i / CALLS, step=i)
                        own.flush()

            call_s, durable_s = median_times([calls_over_http, durable_calls], REPEAT)
        finally:
            server.terminate()
            server.wait(10)
    rows = [
        Row(
            f"mlflow client log_batch, {POINTS:,} points (vs in-process ll.log_metric)",
            POINTS / http_s,
            POINTS / local_s,
            "> 3,051 points/s (MLflow's server)",
            unit="points/s",
            higher_is_better=True,
        ),
        Row(
            f"mlflow client log_metric, {CALLS} calls (vs ll.log_metric + flush)",
            CALLS / call_s,
            CALLS / durable_s,
            "> 46 calls/s (MLflow's server)",
            unit="calls/s",
            higher_is_better=True,
        ),
    ]
    print_table("MLflow REST API (loopline server, SQLite)", rows)


if __name__ == "__main__":
    main()
