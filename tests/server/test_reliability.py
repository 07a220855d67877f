"""The platform server when things break (issue 15, "Reliability"): real `loopline server`
processes on real ports over a real PostgreSQL.

- kill -9 under load (the supervisor and both workers), then a restart on the same stores
  and port: every write that was answered 2xx is stored, once, and nothing half of it.
- A metric batch whose answer is lost after the server committed it is sent again with
  its id and stored once (a proxy that drops answers stands for the dropped connection).
- The database drops the server's connections mid-write (pg_terminate_backend on the
  connections of this server only: PostgreSQL itself is shared and is not restarted): a
  503 with a JSON body, no half-written run, the pool recovers, the client retries what is
  safe to repeat and reports the rest as one error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import loopline as ll
from fixtures.breaking import AnswerLosingProxy, PgStore, in_thread, pg_store
from fixtures.server_process import LOOPLINE, Server, running, server_env
from fixtures.waiting import eventually
from loopline.errors import StoreUnavailable
from loopline.store.predictions import LogSketch, RequestFilter, floor_hour
from loopline.store.remote import RemoteMetadataStore

API = "/api/v1"


@pytest.fixture
def needs_postgres(postgres_available: bool) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable (set LOOPLINE_TEST_POSTGRES_URL)")


# -- kill -9 under load ---------------------------------------------------------------------


@dataclass
class Acks:
    """What the writers were told was done (a 2xx), and what stopped each of them."""

    runs: dict[int, str] = field(default_factory=dict)  # n -> run id
    late_params: set[str] = field(default_factory=set)  # run ids
    batches: list[range] = field(default_factory=list)  # steps of "m" stored by batch
    feedback: set[str] = field(default_factory=set)  # request ids
    files: set[str] = field(default_factory=set)  # blob hashes indexed
    stopped_by: list[str] = field(default_factory=list)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _writers(store: RemoteMetadataStore, acks: Acks, stop: threading.Event) -> list[Any]:
    """One loop per kind of write; each records its 2xx answers and ends at its first
    failure (the server is gone) or when `stop` is set."""
    experiment = store.runs.get_or_create_experiment("load").id
    metrics_run = store.runs.create_run(experiment, name="metrics").id
    hour = floor_hour(datetime.now(UTC))

    def runs(n: int) -> None:
        run = store.runs.create_run(
            experiment, params={"n": n, "a": "x", "b": "y"}, tags={"writer": "runs"}
        )
        acks.runs[n] = run.id
        store.runs.log_params(run.id, {"late_a": n, "late_b": n})
        acks.late_params.add(run.id)

    def batches(n: int) -> None:
        steps = range(n * 10, n * 10 + 10)
        points = [(metrics_run, "m", float(step), step, 1000 + step) for step in steps]
        store.runs.log_metric_points(points, os.urandom(16).hex())
        acks.batches.append(steps)

    def feedback(n: int) -> None:
        items = [(f"req-{n}", 0, "1"), (f"req-{n}", 1, "0")]
        store.predictions.add_feedback("killed", items)
        acks.feedback.add(f"req-{n}")

    def files(n: int) -> None:
        blob = _hex(f"log-{n}")
        store.predictions.add_file(
            "killed",
            hour=hour,
            blob_hash=blob,
            rows=2,
            first_time=hour,
            last_time=hour,
            size_bytes=100,
            request_filter=RequestFilter(blocks=1, bits=bytes(64)),
            sketch=LogSketch(_hex(f"sketch-{n}"), 1),
        )
        acks.files.add(blob)

    def loop(write: Callable[[int], None]) -> None:
        n = 0
        while not stop.is_set():
            try:
                write(n)
            except StoreUnavailable as exc:
                acks.stopped_by.append(f"{write.__name__}: {exc}")
                return
            n += 1

    return [
        threading.Thread(target=loop, args=(write,), name=write.__name__)
        for write in (runs, batches, feedback, files)
    ]


@pytest.mark.slow
@pytest.mark.xdist_group("reliability")
def test_kill_9_under_load_loses_no_answered_write_and_halves_none(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, needs_postgres: None
) -> None:
    """`loopline server --workers 2` on PostgreSQL, SIGKILLed (supervisor and workers)
    while threads create runs, log params, metric batches (also through a run's buffer),
    feedback and prediction-log index rows, then restarted on the same stores and port."""
    from loopline.config import init_project

    clean_env.setenv("LOOPLINE_METRIC_FLUSH_INTERVAL", "0.1")
    root = tmp_path / "server"
    init_project(tmp_path / "client")
    with pg_store() as pg:
        with running(root, "--workers", "2", store_uri=pg.uri) as first:
            port = first.port
            store = RemoteMetadataStore(first.url)
            client = ll.Client(tmp_path / "client", server=first.url)  # a buffered run
            run = client.start_run(experiment="buffered")
            acks, stop = Acks(), threading.Event()
            logged = [0]

            def log_points() -> None:
                while not stop.is_set():
                    run.log_metric("x", float(logged[0]), step=logged[0])
                    logged[0] += 1
                    stop.wait(0.0005)

            threads = [*_writers(store, acks, stop), threading.Thread(target=log_points)]
            for thread in threads:
                thread.start()
            eventually(
                lambda: min(len(acks.runs), len(acks.batches), len(acks.feedback), len(acks.files)),
                until=lambda fewest: fewest >= 5,
                timeout=60,
                message=lambda: f"the writers did not get going: {acks.stopped_by}",
            )
            first.kill()  # mid-stream: requests in flight, some committed and not answered
            stop.set()
        # one worker is enough to serve the retries and the checks, and starts sooner
        with running(root, store_uri=pg.uri, port=port) as second:
            for thread in threads:  # the idempotent calls in flight retry against `second`
                thread.join(60)
            run.end()  # the buffer sends its failed batch again, with its id, and the rest
            client.close()
            store.close()
            _check_every_answered_write_once(RemoteMetadataStore(second.url), pg, acks)
            assert [p.step for p in client_history(second, run.id)] == list(range(logged[0]))


def client_history(server: Server, run_id: str) -> list[Any]:
    store = RemoteMetadataStore(server.url)
    try:
        return store.runs.get_metric_history(run_id, "x")
    finally:
        store.close()


def _check_every_answered_write_once(store: RemoteMetadataStore, pg: PgStore, acks: Acks) -> None:
    try:
        experiment = store.runs.get_experiment("load").id
        found = store.runs.search_runs([experiment], max_results=None)
        by_n: dict[str, list[Any]] = {}
        for run in found:
            if run.name == "metrics":
                continue
            # created with its params and tag in one transaction: all of them or no run
            assert {"n", "a", "b"} <= run.params.keys() and run.tags == {"writer": "runs"}
            assert ("late_a" in run.params) == ("late_b" in run.params), run.params
            by_n.setdefault(run.params["n"], []).append(run)
        assert all(len(runs) == 1 for runs in by_n.values())  # no run created twice
        for n, run_id in acks.runs.items():
            assert [run.id for run in by_n[str(n)]] == [run_id]
        late = {run.id for runs in by_n.values() for run in runs if "late_a" in run.params}
        assert acks.late_params <= late

        [metrics_run] = [run for run in found if run.name == "metrics"]
        steps = [p.step for p in store.runs.get_metric_history(metrics_run.id, "m")]
        assert len(steps) == len(set(steps))  # no batch stored twice
        assert {step for batch in acks.batches for step in batch} <= set(steps)
        assert len(set(steps)) % 10 == 0  # whole batches only

        labels = pg.query(
            'SELECT request_id, "row", count(*) FROM {s}.prediction_feedback '
            'GROUP BY request_id, "row"'
        )
        assert all(count == 1 for _, _, count in labels)
        rows_of: dict[str, set[int]] = {}
        for request_id, row, _ in labels:
            rows_of.setdefault(request_id, set()).add(row)
        assert all(rows == {0, 1} for rows in rows_of.values())  # both rows or none
        assert acks.feedback <= rows_of.keys()

        indexed = pg.query(
            "SELECT f.blob_hash, r.blocks, s.sketch_hash FROM {s}.prediction_log_files f "
            "LEFT JOIN {s}.prediction_log_request_filters r ON r.file_id = f.id "
            "LEFT JOIN {s}.prediction_log_sketches s ON s.file_id = f.id"
        )
        assert all(blocks == 1 and sketch for _, blocks, sketch in indexed)
        assert acks.files <= {blob for blob, _, _ in indexed}
    finally:
        store.close()


# -- a metric batch whose answer is lost --------------------------------------------------


@pytest.fixture
def losing_proxy(platform_server: Any, served_stores: Any) -> Iterator[AnswerLosingProxy]:
    """The proxy in front of the in-process platform server, serving a fresh store."""
    with platform_server.serving(served_stores) as url:
        proxy = AnswerLosingProxy(url)
        try:
            yield proxy
        finally:
            proxy.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's retries without their back-off pauses (seconds of waiting)."""
    monkeypatch.setattr("loopline.store.remote._session.BACKOFF_S", 0.001)


def test_a_batch_whose_answer_was_lost_is_retried_and_stored_once(
    losing_proxy: AnswerLosingProxy, fast_retries: None
) -> None:
    store = RemoteMetadataStore(losing_proxy.url)
    try:
        run_id = store.runs.create_run(store.runs.get_or_create_experiment("lost").id).id
        points = [(run_id, "loss", step / 10, step, 1000 + step) for step in range(50)]
        losing_proxy.lose = 1
        store.runs.log_metric_points(points, "ab" * 16)  # answer lost: sent again, same id
        assert (losing_proxy.lost, losing_proxy.delivered) == (1, 2)
        history = store.runs.get_metric_history(run_id, "loss")
        assert [p.step for p in history] == list(range(50))

        # without an id a repeat would store the points twice: not retried, and said so
        losing_proxy.lose += 1
        with pytest.raises(StoreUnavailable, match="may or may not have been applied"):
            store.runs.log_metric_points(points[:5])
        assert losing_proxy.delivered == 3
        assert len(store.runs.get_metric_history(run_id, "loss")) == 55
    finally:
        store.close()


def test_the_buffer_sends_a_failed_batch_again_with_its_id(
    losing_proxy: AnswerLosingProxy,
    fast_retries: None,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Every answer to the first batch is lost (the first try and the client's four
    retries: five copies delivered, one stored); the buffer keeps the batch with its id
    and the next flush sends it again: acknowledged, still stored once."""
    from loopline.config import init_project

    clean_env.setenv("LOOPLINE_METRIC_FLUSH_INTERVAL", "60")  # no background flush here
    init_project(tmp_path / "client")
    with ll.Client(tmp_path / "client", server=losing_proxy.url) as client:
        run = client.start_run(experiment="buffered")
        for step in range(100):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        losing_proxy.lose = 5
        with pytest.raises(StoreUnavailable, match="cannot reach the loopline server"):
            run.flush()
        assert (losing_proxy.lost, losing_proxy.delivered) == (5, 5)
        run.flush()
        assert losing_proxy.delivered == 6
        for step in range(100, 120):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.end()
        history = client.stores.metadata.runs.get_metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(120))


# -- the database drops the server's connections -------------------------------------------


@pytest.fixture(scope="module")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_available: bool
) -> Iterator[tuple[Server, PgStore]]:
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable (set LOOPLINE_TEST_POSTGRES_URL)")
    with pg_store() as pg:
        root = tmp_path_factory.mktemp("dropped")
        with running(root, store_uri=pg.uri) as server:
            yield server, pg


@pytest.fixture
def remote(pg_server: tuple[Server, PgStore]) -> Iterator[RemoteMetadataStore]:
    store = RemoteMetadataStore(pg_server[0].url)
    yield store
    store.close()


@pytest.mark.slow
@pytest.mark.xdist_group("reliability")
def test_a_write_whose_connection_drops_is_a_503_in_json_and_leaves_nothing(
    pg_server: tuple[Server, PgStore], remote: RemoteMetadataStore
) -> None:
    server, pg = pg_server
    experiment = remote.runs.get_or_create_experiment("dropped").id
    body = {"experiment_id": experiment, "params": {"a": "1", "b": "2"}, "tags": {"t": "x"}}
    with pg.row_locked("experiments", experiment):
        answer = in_thread(lambda: httpx.post(f"{server.url}{API}/runs", json=body, timeout=60))
        pg.terminate_the_blocked_request()
    response = answer()
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["type"] == "StoreUnavailable" and "create run" in error["message"]
    assert "Traceback" not in response.text and "postgres" not in response.text
    assert remote.runs.search_runs([experiment]) == []  # no run, no params of one

    # the pool recovers: every connection of the server ended, the next calls just work
    assert pg.terminate() >= 1
    for _ in range(6):
        created = httpx.post(f"{server.url}{API}/runs", json=body, timeout=60)
        assert created.status_code == 201, created.text
    assert len(remote.runs.search_runs([experiment])) == 6


@pytest.mark.slow
@pytest.mark.xdist_group("reliability")
def test_the_client_retries_what_is_safe_to_repeat_and_reports_the_rest(
    pg_server: tuple[Server, PgStore], remote: RemoteMetadataStore, tmp_path: Path
) -> None:
    server, pg = pg_server
    experiment = remote.runs.get_or_create_experiment("client").id
    run_id = remote.runs.create_run(experiment).id

    with pg.row_locked("runs", run_id):  # params: safe to repeat, retried transparently
        logged = in_thread(lambda: remote.runs.log_params(run_id, {"a": 1, "b": 2}))
        pg.terminate_the_blocked_request()
    logged()
    assert remote.runs.get_run(run_id).params == {"a": "1", "b": "2"}

    with pg.row_locked("experiments", experiment):  # a new run: not repeated, reported
        created = in_thread(lambda: remote.runs.create_run(experiment, params={"c": 3}))
        pg.terminate_the_blocked_request()
    with pytest.raises(StoreUnavailable, match="create run") as raised:
        created()
    assert raised.value.hint is not None and "may or may not" in raised.value.hint
    assert [run.id for run in remote.runs.search_runs([experiment])] == [run_id]

    from loopline.config import init_project

    init_project(tmp_path)  # a laptop's project, working through the server
    cli = {**server_env(None), "LOOPLINE_SERVER": server.url}
    with pg.row_locked("runs", run_id):  # the CLI: one error line, its exit code
        ended = in_thread(
            lambda: subprocess.run(
                [*LOOPLINE, "runs", "end", run_id, "--status", "FAILED"],
                cwd=tmp_path,
                env=cli,
                capture_output=True,
                text=True,
                timeout=120,
            )
        )
        pg.terminate_the_blocked_request()
    done = ended()
    assert done.returncode == StoreUnavailable.exit_code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("Error: end run") and len(lines) <= 2, done.stderr
    assert remote.runs.get_run(run_id).status.value == "RUNNING"


@pytest.mark.slow
@pytest.mark.xdist_group("reliability")
def test_connections_dropped_at_random_under_load_give_503s_and_no_half_run(
    pg_server: tuple[Server, PgStore], remote: RemoteMetadataStore, fast_retries: None
) -> None:
    """Writers and readers while the server's busy connections are ended every 20 ms:
    each answer is a 2xx or a JSON 503 (never a 500 or a cut connection), and metric
    batches sent again after a 503 (as the buffer does) are stored once."""
    server, pg = pg_server
    experiment = remote.runs.get_or_create_experiment("storm").id
    metrics_run = remote.runs.create_run(experiment, name="metrics").id
    stop = threading.Event()
    statuses: dict[int, int] = {}
    bad: list[str] = []
    batches_sent: list[int] = []

    def record(response: httpx.Response) -> None:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 503:
            if response.json()["error"]["type"] != "StoreUnavailable":
                bad.append(response.text)
        elif not response.is_success:
            bad.append(f"{response.status_code} {response.text[:300]}")

    def create_runs() -> None:
        body = {"experiment_id": experiment, "params": {f"p{i}": "v" for i in range(20)}}
        with httpx.Client(base_url=server.url + API, timeout=60) as http:
            while not stop.is_set():
                record(http.post("/runs", json=body))
                record(http.get(f"/runs/{metrics_run}"))

    def log_batches() -> None:
        for n in range(10_000):
            if stop.is_set():
                return
            points = [(metrics_run, "m", 1.0, step, 1000) for step in range(n * 50, n * 50 + 50)]
            batch_id = os.urandom(16).hex()
            while True:  # the buffer's way: the same batch, the same id, until it is in
                try:
                    remote.runs.log_metric_points(points, batch_id)
                    break
                except StoreUnavailable:
                    continue
            batches_sent.append(n)

    def drop_connections() -> None:
        while not stop.wait(0.02):
            with contextlib.suppress(psycopg.OperationalError):  # a busy machine: next time
                pg.terminate()

    threads = [threading.Thread(target=f) for f in (create_runs, create_runs, log_batches)]
    for thread in threads:
        thread.start()
    dropper = threading.Thread(target=drop_connections)
    dropper.start()
    eventually(
        lambda: statuses.get(503, 0) >= 5 and len(batches_sent) >= 5,
        timeout=60,
        message=lambda: f"the storm did not hit the writes: {statuses}, {len(batches_sent)}",
    )
    stop.set()
    for thread in [*threads, dropper]:
        thread.join(60)
    assert bad == []
    for run in remote.runs.search_runs([experiment], max_results=None):
        if run.name != "metrics":
            assert len(run.params) == 20, run.params  # all of a run's params or no run
    steps = [p.step for p in remote.runs.get_metric_history(metrics_run, "m")]
    assert sorted(steps) == list(range(len(batches_sent) * 50))
