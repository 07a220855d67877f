"""Log durability "sync" (and "fsync"): an answer leaves only once its record is in the
journal file (and, with "fsync", flushed to disk), so a SIGKILL of the server loses no
answered request (issue 11, from the team's notes). Real servers on real ports
(in-process, and `loopline deploy serve` as a subprocess that is killed), real journal
files, the real prediction log read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from fixtures.serving import ServingProject, free_port, live_server, open_serving_project
from fixtures.waiting import eventually
from loopline.errors import InvalidInput
from loopline.predictions import (
    Block,
    PredictionBatch,
    PredictionLog,
    PredictionRecord,
    read_predictions,
)
from loopline.predictions._journal import claim_orphans
from loopline.predictions._journal_frames import (
    NO_SHADOW_ANSWER,
    append_frame,
    encode_batch,
    encode_entry,
    read_frames,
)
from loopline.serving import deployments as dep
from loopline.serving.online._stored import StoredDeployments
from loopline.serving.online.app import create_app


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("durability")) as opened:
        yield opened


def _journaled(log: PredictionLog) -> set[str]:
    """The request ids in the journal's whole frames right now."""
    found = set()
    for segment in log.journal_folder.glob("*.wal"):
        for frame in read_frames(segment):
            found.update(rid for entry in frame if entry["k"] == "b" for rid in entry["ids"])
    return found


def _post(url: str, name: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/deployments/{name}/predict", json=body, timeout=30)


def test_sync_answers_only_once_the_record_is_in_the_journal(project: ServingProject) -> None:
    dep.create_deployment("synced", "churn/1")
    log = PredictionLog(flush_seconds=60, durability="sync")
    app = create_app(StoredDeployments(["synced"], poll_seconds=60), sink=log)
    answered: dict[str, int] = {}
    missing: list[str] = []
    lock = threading.Lock()
    with live_server(app) as url:

        def call(i: int) -> None:
            answer = _post(url, "synced", {"inputs": project.rows(1 + i % 3, i)})
            assert answer.status_code == 200, answer.text
            request_id = answer.headers["x-request-id"]
            journaled = _journaled(log)  # read as soon as the answer is in
            with lock:
                answered[request_id] = 1 + i % 3
                if request_id not in journaled:
                    missing.append(request_id)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(60)))
        assert log.buffered_rows == 0  # nothing waits in memory
    assert missing == []
    rows = read_predictions("synced").to_pylist()  # the server stopped: journal -> log
    assert len(rows) == sum(answered.values())
    assert {row["request_id"] for row in rows} == set(answered)
    assert list(log.journal_folder.glob("*.wal")) == []


def test_sync_with_a_shadow_logs_the_shadows_answer_too(project: ServingProject) -> None:
    dep.create_deployment("mirrored", "churn/1")
    dep.update_deployment("mirrored", shadow="churn/2")
    log = PredictionLog(flush_seconds=60, durability="sync")
    app = create_app(StoredDeployments(["mirrored"], poll_seconds=60), sink=log)
    ids = []
    with live_server(app) as url:
        for i in range(5):
            answer = _post(url, "mirrored", {"inputs": project.rows(1, i)})
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-request-id"])
            assert ids[-1] in _journaled(log)
    rows = read_predictions("mirrored").to_pylist()
    assert [row["request_id"] for row in rows] == ids
    assert {row["shadow_version"] for row in rows} == {"churn/1"}  # churn/2: its export
    assert all(row["shadow_prediction"] == row["prediction"] for row in rows)
    assert {row["shadow_error"] for row in rows} == {None}


class FullDisk:
    """A durable sink on a disk that is full: every commit fails."""

    durable = True

    def commit(
        self, batch: PredictionBatch, done: Callable[[BaseException | None], None], **_: Any
    ) -> None:
        done(OSError(28, "No space left on device"))

    def commit_shadow(self, request_id: str, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_answer_whose_record_cannot_be_written_is_withheld(project: ServingProject) -> None:
    dep.create_deployment("full-disk", "churn/1")
    app = create_app(StoredDeployments(["full-disk"], poll_seconds=60), sink=FullDisk())
    with live_server(app) as url:
        answer = _post(url, "full-disk", {"inputs": project.rows(1)})
        again = _post(url, "full-disk", {"inputs": project.rows(1)})
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "StoreUnavailable"
    assert "predictions" not in answer.json()
    assert again.status_code == 503  # the server keeps going


def _batch(request_id: str, rows: int = 1) -> PredictionBatch:
    record = PredictionRecord(
        request_id=request_id,
        time=datetime.now(UTC),
        deployment="direct",
        model_version="churn/1",
        runtime_version="churn/2",
        endpoint="predict",
        predictions=np.zeros(rows, np.int64),
        probabilities=np.full((rows, 2), 0.5),
        latency_ms=1.0,
        block=Block(("x",), rows, np.ones((rows, 1))),
    )
    return PredictionBatch.of(record)


def _commit_all(log: PredictionLog, batches: list[PredictionBatch]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    left = threading.Semaphore(0)

    def done(error: BaseException | None) -> None:
        outcomes.append(error)
        left.release()

    for batch in batches:
        log.commit(batch, done)
    for _ in batches:
        assert left.acquire(timeout=10)
    return outcomes


@pytest.mark.parametrize("durability", ["sync", "fsync"])
def test_concurrent_commits_share_one_write_and_fsync(
    project: ServingProject, durability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[int] = []
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:  # the real call, counted
        flushed.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    log = PredictionLog(flush_seconds=60, durability=durability)
    try:
        outcomes = _commit_all(log, [_batch(f"g{i}") for i in range(200)])
        assert outcomes == [None] * 200
        [segment] = log.journal_folder.glob("*.wal")
        frames = list(read_frames(segment))
        assert sum(len(frame) for frame in frames) == 200
        assert len(frames) < 200  # group commit: one frame (one write) for many
        # "fsync" flushes the journal once per frame before answering; "sync" never does
        assert len(flushed) == (len(frames) if durability == "fsync" else 0)
    finally:
        log.close()
    assert {r["request_id"] for r in read_predictions("direct").to_pylist()} >= {
        f"g{i}" for i in range(200)
    }


def test_a_shadow_that_never_answers_is_named_in_the_log(project: ServingProject) -> None:
    log = PredictionLog(flush_seconds=60, durability="sync")
    pending = replace(_batch("lonely"), deployment="lonely", shadow_version="churn/3")
    outcomes: list[BaseException | None] = []
    log.commit(pending, outcomes.append, shadow_pending=True)
    log.close()  # the shadow never answered
    [row] = read_predictions("lonely").to_pylist()
    assert (row["shadow_version"], row["shadow_error"]) == ("churn/3", NO_SHADOW_ANSWER)
    assert outcomes == [None]


def test_durability_must_be_fast_sync_or_fsync(project: ServingProject) -> None:
    for wrong in ("always", "SYNC", 1, None):
        with pytest.raises(InvalidInput, match="'fast', 'sync' or 'fsync'"):
            PredictionLog(durability=wrong)  # type: ignore[arg-type]


KILLED_WRITER = """
import sys, time, threading
from datetime import UTC, datetime
import numpy as np
from loopline.project import configure
from loopline.predictions import Block
from loopline.predictions import PredictionBatch, PredictionRecord
from loopline.predictions import PredictionLog
configure(project=sys.argv[1])
log = PredictionLog(flush_seconds=60, durability="sync")
left = threading.Semaphore(0)
for i in range(50):
    record = PredictionRecord(
        f"k{i}", datetime.now(UTC), "direct", "churn/1", "churn/2", "predict",
        np.zeros(1, np.int64), None, 1.0, Block(("x",), 1, np.ones((1, 1))),
    )
    log.commit(PredictionBatch.of(record), lambda error: left.release())
for _ in range(50):
    left.acquire()
print("committed", flush=True)
time.sleep(60)
"""


def test_a_journal_left_by_a_killed_process_is_logged_by_the_next(
    project: ServingProject,
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(project.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "committed"
        journal = project.root / ".loopline" / "prediction-log" / "journal"
        assert claim_orphans(journal) == []  # a live process holds its segment
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        if writer.stdout is not None:
            writer.stdout.close()
    PredictionLog().close()  # the next log of the project converts and delivers it
    logged = {row["request_id"] for row in read_predictions("direct").to_pylist()}
    assert {f"k{i}" for i in range(50)} <= logged
    assert list(journal.glob("*.wal")) == []


def test_deploy_serve_with_sync_log_loses_no_answer_to_sigkill(project: ServingProject) -> None:
    """`loopline deploy serve --workers 2 --log-durability sync` under load, killed with
    SIGKILL (the whole process group: the supervisor and both workers): every request
    that got a 2xx is in the log once the next prediction log has read the journal."""
    dep.create_deployment("killed", "churn/1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    entry = str(Path(sys.executable).parent / "loopline")
    command = [entry, "deploy", "serve", "killed", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        [*command, "--log-durability", "sync"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, killed as one below
    )
    answered: list[str] = []
    stop = threading.Event()
    try:
        _wait_ready(url, server)

        def client(start: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                for i in range(start, start + 150):  # bounded: at most 600 requests in all
                    if stop.is_set():
                        return
                    try:
                        answer = http.post(
                            "/v1/deployments/killed/predict", json={"inputs": project.rows(1, i)}
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if 200 <= answer.status_code < 300:
                        answered.append(answer.headers["x-request-id"])

        threads = [threading.Thread(target=client, args=(n * 150,)) for n in range(4)]
        for thread in threads:
            thread.start()
        eventually(
            lambda: len(answered) >= 200,
            timeout=20,
            interval=0.01,
            message="fewer than 200 requests were answered",
        )
        os.killpg(server.pid, signal.SIGKILL)  # mid-stream, requests in flight
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
    assert len(answered) >= 200
    PredictionLog().close()  # what a restarted server does first
    logged = {row["request_id"] for row in read_predictions("killed").to_pylist()}
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} of {len(answered)} answered requests are not logged"


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Until both workers answer /health/ready (20 fresh connections in a row)."""
    streak = [0]

    def ready_twenty_times_in_a_row() -> bool:
        assert server.poll() is None, f"the server exited (exit code {server.poll()})"
        try:
            ready = httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            ready = False
        streak[0] = streak[0] + 1 if ready else 0
        return streak[0] >= 20

    eventually(
        ready_twenty_times_in_a_row,
        timeout=timeout,
        interval=0.02,
        message="the server did not become ready",
    )


def test_the_cli_takes_log_durability_and_refuses_anything_else(
    project: ServingProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.app import run

    for command in (["serve", "--help"], ["deploy", "serve", "--help"]):
        assert run(command) == 0
        assert "--log-durability" in capsys.readouterr().out
    assert run(["serve", "churn@latest", "--log-durability", "bogus"]) == 2
    printed = capsys.readouterr()
    assert "log durability must be 'fast', 'sync' or 'fsync'" in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err


def test_a_frame_cut_short_by_a_crash_ends_its_segment(project: ServingProject) -> None:
    """A kill mid-write leaves a torn last frame: its requests were never answered, so
    the segment is read up to it."""
    journal = project.root / ".loopline" / "prediction-log" / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    path = journal / "20260101T000000-torn.wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for request_id in ("whole", "torn"):
        batch = replace(_batch(request_id), deployment="torn-journal")
        append_frame(fd, [encode_entry(encode_batch(batch))])
    os.close(fd)
    path.write_bytes(path.read_bytes()[:-5])
    PredictionLog().close()
    logged = [row["request_id"] for row in read_predictions("torn-journal").to_pylist()]
    assert logged == ["whole"]
    assert not path.exists()


def test_a_claimer_never_takes_a_segment_being_opened(
    project: ServingProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full-suite run once caught the log's own orphan scan locking a segment between its
    creation and its lock: the journal then failed and the commits waited. Here the scan
    runs exactly in that window (just before the journal's lock): it must find nothing."""
    import fcntl

    log = PredictionLog(flush_seconds=60, durability="sync")
    real_flock = fcntl.flock
    stolen: list[str] = []

    def flock_after_a_claimer(fd: int, operation: int) -> None:
        if threading.current_thread().name == "loopline-journal":
            for claimed in claim_orphans(log.journal_folder):  # the other thread wins
                stolen.append(claimed.path.name)
                claimed.release()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_claimer)
    try:
        outcomes = _commit_all(log, [_batch(f"c{i}") for i in range(20)])
    finally:
        monkeypatch.undo()
        log.close()
    assert outcomes == [None] * 20
    assert stolen == []
