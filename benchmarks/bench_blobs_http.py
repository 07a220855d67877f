"""Blobs over HTTP: push and pull of 256 MB of random data through a loopline server,
beside the same calls on a local store in the same run.

- push: `put_files([file])` (the file is cut into ~1 MiB content-defined chunks, the
  server is asked which it lacks, all are sent in batches) into an empty store;
  pull: `get_files` of it to a new destination (every chunk verified on receipt).
- the same with `put_file`/`get_file` (one loose blob, streamed by PUT and GET).
- re-push: `put_files` of the unchanged file again (sends digests only).
- reference: the same calls on a local-folder store.
- a dropped upload: `put_file` of another 256 MB file whose first upload was cut at 50 %
  (the client's body stops and its connection closes), resumed: the server is asked what
  it kept and only the other half is sent (it hashes its half again from its disk);
  reference: the same `put_file` with nothing kept, i.e. the whole re-send a client made
  before uploads were resumable. Only the recovery is timed, not the cut first half.

The server is the platform app under uvicorn in its own process (so that it does not
share this process's GIL), on 127.0.0.1, with a local-folder store; each timed run
uses a fresh server store and a fresh local store. Three runs, median.

Run: `python benchmarks/bench_blobs_http.py`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from _harness import Row, print_table  # noqa: E402
from loopline.store._hashing import hash_stream  # noqa: E402
from loopline.store.artifacts import ArtifactStore  # noqa: E402

SIZE = 256 * 2**20
REPEAT = 3
MB = 2**20

_SERVER = """
import sys, uvicorn
from pathlib import Path
from loopline.config import init_project
from loopline.project import open_stores, project_settings
from loopline.server import create_app
from loopline.serving.online.server import no_delay_protocol
root = Path(sys.argv[1])
init_project(root)
uvicorn.run(create_app(open_stores(project_settings(root))), host="127.0.0.1",
            port=int(sys.argv[2]), http=no_delay_protocol(), log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen([sys.executable, "-c", _SERVER, str(root), str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _measure(store: ArtifactStore, source: Path, dest: Path) -> dict[str, float]:
    """Seconds for each step on `store`, an empty store."""
    start = time.perf_counter()
    [stored] = store.put_files([source])
    pushed = time.perf_counter()
    store.get_files([(stored, dest / "a.bin")])
    pulled = time.perf_counter()
    store.put_files([source])
    repushed = time.perf_counter()
    blob = store.put_file(source)
    put = time.perf_counter()
    store.get_file(blob.hash, dest / "b.bin")
    got = time.perf_counter()
    assert (dest / "a.bin").stat().st_size == SIZE == (dest / "b.bin").stat().st_size
    return {
        "push": pushed - start,
        "pull": pulled - pushed,
        "repush": repushed - pulled,
        "put_file": put - repushed,
        "get_file": got - put,
    }


def _random_file(path: Path) -> Path:
    with open(path, "wb") as out:
        for _ in range(SIZE // MB):
            out.write(os.urandom(MB))
    return path


def _drop_at_half(url: str, source: Path) -> None:
    """Upload `source` resumably and drop the connection after half of it."""
    with open(source, "rb") as file:
        digest = hash_stream(file)

    def half_then_drop() -> Iterator[bytes]:
        with open(source, "rb") as file:
            for _ in range(SIZE // MB // 2):
                yield file.read(MB)
        raise ConnectionResetError("the connection dropped at 50 %")

    headers = {"Content-Range": f"bytes 0-{SIZE - 1}/{SIZE}", "Content-Length": str(SIZE)}
    with contextlib.suppress(ConnectionResetError, httpx.HTTPError):
        httpx.put(f"{url}/api/v1/blobs/{digest}", content=half_then_drop(), headers=headers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the server has let go of what it kept
        state = httpx.get(f"{url}/api/v1/blobs/{digest}/upload").json()
        if not state["busy"] and state["offset"]:
            return
        time.sleep(0.05)
    raise RuntimeError("the server kept nothing of the dropped upload")


def _measure_resume(store: ArtifactStore, url: str, work: Path) -> dict[str, float]:
    """Seconds to complete an upload cut at 50 %: resumed, and sent whole again."""
    resumed, whole = _random_file(work / "resumed.bin"), _random_file(work / "whole.bin")
    _drop_at_half(url, resumed)
    start = time.perf_counter()
    store.put_file(resumed)
    done = time.perf_counter()
    store.put_file(whole)  # nothing kept: every byte goes again
    return {"resumed": done - start, "resent": time.perf_counter() - done}


def main() -> list[Row]:
    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="loopline-bench-http-") as tmp:
        work = Path(tmp)
        source = work / "data.bin"
        with open(source, "wb") as out:
            for _ in range(SIZE // MB):
                out.write(os.urandom(MB))
        for run in range(REPEAT + 1):  # the first run warms up and is not counted
            for side in ("local", "http"):
                if side == "local":
                    process, store = None, ArtifactStore(str(work / f"local{run}"))
                else:
                    process, url = _start_server(work / f"server{run}")
                    store = ArtifactStore(url)
                try:
                    measured = _measure(store, source, work / f"out-{side}-{run}")
                    if side == "http":
                        measured |= _measure_resume(store, url, work / f"out-{side}-{run}")
                    if run:
                        for name, seconds in measured.items():
                            record(f"{side} {name}", seconds)
                finally:
                    if process is not None:
                        store.close()
                        process.terminate()
                        process.wait(30)
                    shutil.rmtree(work / f"local{run}", ignore_errors=True)
                    shutil.rmtree(work / f"server{run}", ignore_errors=True)
                    shutil.rmtree(work / f"out-{side}-{run}", ignore_errors=True)
    mb = SIZE / MB
    rows = []
    for name in ("push", "pull", "put_file", "get_file"):
        http, local = _median(times[f"http {name}"]), _median(times[f"local {name}"])
        rows.append(Row(f"{name} 256 MB (MB/s)", mb / http, mb / local, "report", "MB/s", True))
    rows.append(
        Row(
            "re-push of the unchanged 256 MB",
            _median(times["http repush"]) * 1000,
            _median(times["local repush"]) * 1000,
            "report",
        )
    )
    rows.append(
        Row(
            "put_file 256 MB after a drop at 50 %: resumed (ref: sent whole again)",
            _median(times["http resumed"]) * 1000,
            _median(times["http resent"]) * 1000,
            "printed",
        )
    )
    print_table("Blobs over HTTP (ours: through the server; reference: local store)", rows)
    return rows


if __name__ == "__main__":
    main()
