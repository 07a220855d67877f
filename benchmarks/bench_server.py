"""Metric logging through the platform server (issue 15), beside the same work in-process.

- One client: `ll.log_metric` x 200,000 in one run (final flush included), through a real
  server (uvicorn in a subprocess, SQLite behind it), versus the same loop writing to the
  same kind of store in-process.
- 16 concurrent client processes, 20,000 points each, through one server with
  `--workers 2` on PostgreSQL, versus the same 16 processes writing to PostgreSQL
  directly. Timed from a start signal sent once every process has started its run (so
  interpreter start-up is not counted) until the last one has flushed and ended its
  run; then the stored points are counted: nothing may be lost.

Medians of 3 rounds, the two sides in turns. Goals (issue 15): >= 20,000 points/s from
one client; >= 20,000 points/s in total from the 16 clients, nothing lost.

Run: `python benchmarks/bench_server.py [--only single|concurrent]` (PostgreSQL from
LOOPLINE_BENCH_POSTGRES_URL, default the local service).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SRC))

SINGLE_POINTS = 200_000
CLIENTS = 16
POINTS_EACH = 20_000
ROUNDS = 3
PG_URL = os.environ.get(
    "LOOPLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PROTOCOL = "loopline.serving.online.server:NoDelayHTTPProtocol"  # TCP_NODELAY per socket


def server_app() -> Any:
    """The app factory each uvicorn worker calls: the project in BENCH_SERVER_ROOT, on the
    store BENCH_SERVER_STORE, without authentication (loopback)."""
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    root = Path(os.environ["BENCH_SERVER_ROOT"])
    return create_app(open_stores(project_settings(root, store_uri=os.environ["BENCH_STORE"])))


# -- a server in a subprocess ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(root: Path, store_uri: str, workers: int = 1) -> Iterator[str]:
    """uvicorn over `server_app` on a free port, until the block ends; yields its URL."""
    import httpx

    from loopline.store import MetadataStore

    MetadataStore(store_uri).close()  # create and migrate once, before the workers race
    port = _free_port()
    env = {
        **os.environ,
        "BENCH_SERVER_ROOT": str(root),
        "BENCH_STORE": store_uri,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)]),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench_server:server_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--http", PROTOCOL, "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _project(parent: Path, name: str) -> Path:
    from loopline.config import init_project

    root = parent / name
    root.mkdir()
    init_project(root)
    return root


@contextmanager
def pg_store() -> Iterator[str]:
    """A fresh PostgreSQL schema and the store URI that uses it."""
    from urllib.parse import quote

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- one client --------------------------------------------------------------------------------

SINGLE = """
import sys, time
import loopline as ll
with ll.start_run(experiment="bench") as run:
    started = time.perf_counter()
    for step in range({points}):
        ll.log_metric("loss", 1.0 / (step + 1), step=step)
ended = time.perf_counter()
print(run.id, ended - started)
"""


def _single_round(workdir: Path, env: dict[str, str]) -> tuple[str, float]:
    """Seconds one client process takes to log and flush the points (its run's id)."""
    code = SINGLE.format(points=SINGLE_POINTS)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=workdir, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    run_id, seconds = done.stdout.split()
    return run_id, float(seconds)


def bench_single(tmp: Path) -> dict[str, float]:
    """points/s from one client: through a server (SQLite behind it) and in-process."""
    server_root = _project(tmp, "single-server")
    client_root = _project(tmp, "single-client")
    direct_root = _project(tmp, "single-direct")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    base["PYTHONPATH"] = str(SRC)
    served_uri = f"sqlite:///{server_root / 'server.db'}"
    through: list[float] = []
    direct: list[float] = []
    with serving(server_root, served_uri) as url:
        for _ in range(ROUNDS):
            run_id, seconds = _single_round(client_root, {**base, "LOOPLINE_SERVER": url})
            _check_stored(served_uri, [run_id], SINGLE_POINTS)
            through.append(seconds)
            direct_uri = f"sqlite:///{direct_root / 'direct.db'}"
            run_id, seconds = _single_round(direct_root, {**base, "LOOPLINE_STORE_URI": direct_uri})
            _check_stored(direct_uri, [run_id], SINGLE_POINTS)
            direct.append(seconds)
    return {
        "through the server": SINGLE_POINTS / statistics.median(through),
        "in-process": SINGLE_POINTS / statistics.median(direct),
    }


# -- 16 concurrent clients ---------------------------------------------------------------------

CLIENT = """
import sys
import loopline as ll
run = ll.start_run(experiment="bench")
print("ready", run.id, flush=True)
sys.stdin.readline()  # the start signal
for step in range({points}):
    ll.log_metric("loss", 1.0 / (step + 1), step=step)
run.end()
print("done", flush=True)
"""


def _concurrent_round(workdir: Path, env: dict[str, str]) -> tuple[list[str], float]:
    """Seconds from the start signal until all CLIENTS processes ended their runs."""
    code = CLIENT.format(points=POINTS_EACH)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(CLIENTS)
    ]
    try:
        run_ids = []
        for child in children:
            assert child.stdout is not None
            word, run_id = child.stdout.readline().split()
            assert word == "ready", word
            run_ids.append(run_id)
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "done" or child.wait(timeout=600) != 0:
                raise RuntimeError("a client failed")
        return run_ids, time.perf_counter() - started
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _check_stored(store_uri: str, run_ids: list[str], each: int) -> None:
    """Every point of every run is stored, once: nothing lost, nothing doubled."""
    from loopline.store import MetadataStore

    store = MetadataStore(store_uri)
    try:
        for run_id in run_ids:
            steps = [p.step for p in store.runs.get_metric_history(run_id, "loss")]
            if steps != list(range(each)):
                raise AssertionError(f"run {run_id} holds {len(steps)} points, not {each}")
    finally:
        store.close()


def bench_concurrent(tmp: Path) -> dict[str, float]:
    """points/s in total from 16 clients: through `--workers 2` on PostgreSQL, and direct."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    base["PYTHONPATH"] = str(SRC)
    through: list[float] = []
    direct: list[float] = []
    for turn in range(ROUNDS):
        server_root = _project(tmp, f"many-server-{turn}")
        client_root = _project(tmp, f"many-client-{turn}")
        with pg_store() as uri, serving(server_root, uri, workers=2) as url:
            run_ids, seconds = _concurrent_round(client_root, {**base, "LOOPLINE_SERVER": url})
            _check_stored(uri, run_ids, POINTS_EACH)
            through.append(seconds)
        direct_root = _project(tmp, f"many-direct-{turn}")
        with pg_store() as uri:
            from loopline.store import MetadataStore

            MetadataStore(uri).close()  # migrated once, as the server's parent does
            run_ids, seconds = _concurrent_round(direct_root, {**base, "LOOPLINE_STORE_URI": uri})
            _check_stored(uri, run_ids, POINTS_EACH)
            direct.append(seconds)
    total = CLIENTS * POINTS_EACH
    return {
        "through the server": total / statistics.median(through),
        "direct to PostgreSQL": total / statistics.median(direct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["single", "concurrent"])
    only = parser.parse_args().only
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if only in (None, "single"):
            single = bench_single(tmp)
            ratio = single["through the server"] / single["in-process"]
            print(f"one client, {SINGLE_POINTS:,} points (median of {ROUNDS}):")
            for name, rate in single.items():
                print(f"  {name:>22}: {rate:>10,.0f} points/s")
            print(f"  server / in-process: {ratio:.2f}x   goal: >= 20,000 points/s")
        if only in (None, "concurrent"):
            many = bench_concurrent(tmp)
            ratio = many["through the server"] / many["direct to PostgreSQL"]
            print(f"{CLIENTS} clients x {POINTS_EACH:,} points (median of {ROUNDS}), nothing lost:")
            for name, rate in many.items():
                print(f"  {name:>22}: {rate:>10,.0f} points/s")
            print(f"  server / direct: {ratio:.2f}x   goal: >= 20,000 points/s in total")


if __name__ == "__main__":
    main()
