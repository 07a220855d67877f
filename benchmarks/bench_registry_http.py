"""Datasets and the registry through the platform server, beside the same work in-process.

- `data add` of a folder of 100,000 small files, then again unchanged: a local project,
  and a project whose records are on a platform server (a real port, SQLite behind
  it). The manifest and the files are blobs (they stay in the client's artifact folder
  until blobs move over HTTP); what crosses HTTP is the version record, so the figure
  shows that a large dataset costs the remote client a few requests, not one per file.
- the requests each remote `data add` made (counted by the server), and a listing of
  200 versions and of 200 registered model versions: one request each (no N+1).

Run: `python benchmarks/bench_registry_http.py [--small]` (`--small`: 10,000 files).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, median_time, print_table, served_in_thread

SMALL = "--small" in sys.argv
FILES = 10_000 if SMALL else 100_000
LISTED = 200


def make_files(folder: Path) -> None:
    for index in range(FILES):
        sub = folder / f"d{index % 200:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:06d}.txt").write_bytes(b"%d\n" % index + os.urandom(24).hex().encode())


class Counter:
    """ASGI middleware counting the requests the server answered."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


@contextmanager
def platform_server(root: Path) -> Iterator[tuple[str, Counter, Any]]:
    """A new project at `root` served in a thread, its requests counted."""
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    init_project(root)
    opened = open_stores(project_settings(root))
    counter = Counter(create_app(opened))
    try:
        with served_in_thread(counter) as url:
            yield url, counter, opened
    finally:
        opened.close()


def timed_adds(root: Path, files: Path, server: str | None, name: str) -> tuple[float, float]:
    """Seconds of a first `data add` of `files` (moved into the project at `root`) and of a
    second, unchanged one."""
    import loopline as ll
    from loopline.config import init_project
    from loopline.project import close

    init_project(root)
    source = root / "files"
    files.rename(source)
    ll.configure(project=root, server=server)
    try:
        start = time.perf_counter()
        first = ll.data.add(source, name=name)
        added = time.perf_counter() - start
        assert first.created and first.version.file_count == FILES
        start = time.perf_counter()
        again = ll.data.add(source, name=name)
        unchanged = time.perf_counter() - start
        assert not again.created and again.version == first.version
        return added, unchanged
    finally:
        close()
        source.rename(files)


def listings(url: str, counter: Counter, served: Any) -> list[Row]:
    from loopline.store.remote import RemoteMetadataStore

    store = RemoteMetadataStore(url)
    rows = []
    try:
        for number in range(LISTED):
            store.datasets.add_version(
                "listed", manifest_hash=f"{number:064x}", author="b", file_count=1, total_size=1
            )
            store.models.create_version(
                "listed",
                flavor="sklearn",
                package_hash=f"{number:064x}",
                size_bytes=1,
                signature={},
                manifest={},
                created_by="b",
            )
        local = served.metadata
        for what, call, reference in (
            (
                f"list {LISTED} dataset versions",
                lambda: store.datasets.list_versions("listed"),
                lambda: local.datasets.list_versions("listed"),
            ),
            (
                f"list {LISTED} model versions",
                lambda: store.models.list_versions("listed"),
                lambda: local.models.list_versions("listed"),
            ),
        ):
            before = counter.count
            seconds = median_time(lambda call=call: call(), 5)  # type: ignore[misc]
            requests = (counter.count - before) / 5
            in_process = median_time(lambda reference=reference: reference(), 5)  # type: ignore[misc]
            assert len(call()) == LISTED
            rows.append(
                Row(
                    f"{what}: {requests:.0f} request (through the server / in-process)",
                    seconds * 1000,
                    in_process * 1000,
                    "one request",
                )
            )
    finally:
        store.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = base / "files"
        start = time.perf_counter()
        make_files(source)
        print(f"{FILES:,} files written in {time.perf_counter() - start:.1f} s")
        # in turns, local / server / local / server (a shared machine's load falls on
        # both alike), medians of each
        local_runs, remote_runs = [], []
        with platform_server(base / "server") as (url, counter, served):
            before = counter.count
            for turn in range(2):
                local_runs.append(timed_adds(base / f"local{turn}", source, None, f"many{turn}"))
                remote_runs.append(timed_adds(base / f"client{turn}", source, url, f"many{turn}"))
                print(f"turn {turn}: local {local_runs[-1]}, through the server {remote_runs[-1]}")
            requests = (counter.count - before) / 2
            listed = listings(url, counter, served)
        local_add, local_again = (median(run[i] for run in local_runs) for i in (0, 1))
        remote_add, remote_again = (median(run[i] for run in remote_runs) for i in (0, 1))
        rows = [
            Row(
                f"data add, {FILES:,} files (through the server / local)",
                remote_add,
                local_add,
                "a few requests, not one per file",
                unit="s",
            ),
            Row(
                "data add again, unchanged (through the server / local)",
                remote_again,
                local_again,
                "close to local",
                unit="s",
            ),
            *listed,
        ]
        print_table("Datasets and the registry over HTTP", rows)
        print(f"requests to the server for one remote add and its unchanged re-add: {requests:g}")


if __name__ == "__main__":
    main()
