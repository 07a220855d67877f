"""Servers report what they actually serve: real `loopline deploy serve` processes on a
real port, on SQLite and PostgreSQL, write heartbeats that `deploy show` / `deploy ls`
print; a revision that cannot load is named with its error while the last good one
answers; a stopped server's heartbeat is gone, a killed one's goes stale; a store that
cannot be reached does not fail a request. Also: the fields a request sent that are not
model inputs reach the prediction log (`dropped_fields`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopline as ll
from fixtures.serving import free_port, wait_ready
from fixtures.stores import drop_pg_schema, make_pg_schema
from fixtures.waiting import eventually
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, NotFound
from loopline.project import Stores
from loopline.serving import deployments as dep
from loopline.serving.online._heartbeat import check_heartbeat_seconds
from loopline.serving.servers import server_status, servers_by_deployment
from loopline.store import MetadataStore
from loopline.store.servers import ServedState, ServerIdentity
from security.test_hostile_models import hostile_package, register

LOOPLINE = str(Path(sys.executable).parent / "loopline")
BEAT = 0.5  # seconds between heartbeats of the servers started here
EXTRA = "note"  # a field that is not a model input


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def _features() -> Any:
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return features, target


def _logged_model() -> str:
    """`iris/1`: a LogisticRegression on iris's four columns."""
    from sklearn.linear_model import LogisticRegression

    features, target = _features()
    model = LogisticRegression(max_iter=500).fit(features, target)
    return ll.models.log_model(model, name="iris", input_example=features.head(5)).ref


@pytest.fixture
def served(project: Stores, tmp_path: Path) -> Stores:
    """`iris/1` deployed as 'iris', and `hostile/1`, a package the loader refuses."""
    dep.create_deployment("iris", _logged_model())
    register(hostile_package("skops_os_system", tmp_path), project)
    return project


@contextlib.contextmanager
def deploy_serve(
    root: Path, *extra: str, store_uri: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real `loopline deploy serve iris` process; yields it and its base URL."""
    port = free_port()
    env = dict(os.environ)
    if store_uri is not None:
        env["LOOPLINE_STORE_URI"] = store_uri
    log_file = (root / f"server-{port}.log").open("w")
    command = [LOOPLINE, "deploy", "serve", "iris", "--port", str(port), "--poll", "0.2"]
    process = subprocess.Popen(
        [*command, "--heartbeat", str(BEAT), *extra],
        cwd=root,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=120)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log_file.close()


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(["deploy", *args])
    return code, capsys.readouterr().out


def _show_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out = _show(capsys, "show", "iris", "--json")
    assert code == 0, out
    body: dict[str, Any] = json.loads(out)
    return body


def _row(features: Any, extra: bool) -> dict[str, Any]:
    row: dict[str, Any] = features.iloc[0].to_dict()
    if extra:
        row[EXTRA] = "sent by a client that sends whole records"
    return row


def _break(name: str, revision: int) -> None:
    """A new revision serving `hostile/1`, written as a teammate's tool could write it."""
    from loopline.project import stores

    config = dep.get_deployment(name).spec.to_dict()
    config["model"] = {"model": "hostile/1", "ref": "hostile/1"}
    stores().metadata.deployments.update(
        name, config, action="update", actor="test", expected_revision=revision
    )


def test_deploy_show_names_the_served_revision_and_the_load_error(
    served: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    features, _ = _features()
    root = served.settings.root
    with deploy_serve(root) as (process, url), httpx.Client(base_url=url) as client:
        # written within a quarter second of the load (the first beat said "loading")
        eventually(
            lambda: any(s["up_to_date"] for s in _show_json(capsys)["servers"]),
            timeout=30,
            message="no server reported the current revision",
        )
        [server] = _show_json(capsys)["servers"]
        assert server["live"] and server["up_to_date"] and server["state"] == "serving"
        assert (server["revision"], server["current_revision"]) == (1, 1)
        assert server["models"]["model_version"] == "iris/1"
        assert server["pid"] == process.pid and server["address"] == url.removeprefix("http://")
        code, out = _show(capsys, "show", "iris")
        assert code == 0 and "serving revision 1" in out and url.removeprefix("http://") in out
        assert "live r1" in _show(capsys, "ls")[1]

        plain = client.post(
            "/v1/deployments/iris/predict", json={"inputs": [_row(features, False)]}
        )
        extra = client.post("/v1/deployments/iris/predict", json={"inputs": [_row(features, True)]})
        assert plain.status_code == extra.status_code == 200, extra.text
        assert extra.headers["X-Dropped-Fields"] == EXTRA

        _break("iris", revision=1)
        eventually(
            lambda: _show_json(capsys)["servers"][0]["error_revision"] == 2,
            timeout=30,
            message="the server did not report revision 2's error",
        )
        [server] = _show_json(capsys)["servers"]
        assert (server["revision"], server["current_revision"]) == (1, 2)
        assert not server["up_to_date"] and server["state"] == "serving"
        assert "system" in server["error"]
        code, out = _show(capsys, "show", "iris")
        assert code == 0, out
        assert "serving revision 1; revision 2 failed to load:" in out
        assert "system" in out and "not every live server serves it" in out
        assert "r1 of r2 ⚠" in _show(capsys, "ls")[1]
        [listed] = json.loads(_show(capsys, "ls", "--json")[1])
        assert listed["servers"][0]["summary"].startswith("serving revision 1; revision 2")
        answer = client.post(
            "/v1/deployments/iris/predict", json={"inputs": [_row(features, False)]}
        )
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "iris/1"

        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    assert _show_json(capsys)["servers"] == []  # a clean stop removes its heartbeat
    assert "none running" in _show(capsys, "show", "iris")[1]
    assert "no server" in _show(capsys, "ls")[1]

    logged = ll.serving.read_predictions("iris").to_pylist()
    assert sorted(map(str, (r["dropped_fields"] for r in logged))) == ["None", "None", "['note']"]
    with_extra = next(r for r in logged if r["dropped_fields"])
    assert EXTRA not in with_extra["inputs"]  # dropped before the model, named beside it


def test_a_killed_server_goes_stale_and_then_reports_again_when_restarted(
    served: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    root = served.settings.root
    with deploy_serve(root, "--no-log") as (process, _):
        eventually(lambda: _show_json(capsys)["servers"], timeout=30, message="no heartbeat")
        process.kill()
        process.wait(10)
        eventually(
            lambda: not _show_json(capsys)["servers"][0]["live"],
            timeout=BEAT * 3 + 10,
            message="the killed server's heartbeat never went stale",
        )
        [server] = _show_json(capsys)["servers"]
        assert server["state"] == "stale" and server["summary"].startswith("stale")
        assert "stale" in _show(capsys, "show", "iris")[1]
        assert "no server (stale)" in _show(capsys, "ls")[1]
    with deploy_serve(root, "--no-log") as (process, _):
        eventually(
            lambda: any(s["live"] for s in _show_json(capsys)["servers"]),
            timeout=30,
            message="no live server",
        )
        statuses = server_status("iris")
        assert [s.live for s in statuses] == [True, False]  # live ones first
        assert statuses[0].pid == process.pid


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut and restored (a network outage)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
            for link in self._links:
                with contextlib.suppress(OSError):
                    link.shutdown(socket.SHUT_RDWR)
                link.close()
            self._links.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_requests_are_answered_while_the_store_is_unreachable(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, postgres_available: bool
) -> None:
    """The server reaches PostgreSQL through a proxy that is cut: every request is
    answered, the heartbeat goes stale, and it is renewed once the store is back."""
    from urllib.parse import urlsplit

    from loopline.config import init_project
    from loopline.project import close, configure

    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable")
    schema, direct = make_pg_schema()
    at = urlsplit(direct)
    proxy = Proxy((at.hostname or "127.0.0.1", at.port or 5432))
    proxy.start()
    proxied = direct.replace(f"{at.hostname}:{at.port}", f"127.0.0.1:{proxy.port}", 1)
    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    clean_env.chdir(root)
    clean_env.setenv("LOOPLINE_STORE_URI", direct)
    configure(project=root)
    try:
        features, _ = _features()
        dep.create_deployment("iris", _logged_model())
        body = {"inputs": [_row(features, False)]}
        with deploy_serve(root, "--no-log", store_uri=proxied) as (_, url):
            eventually(
                lambda: server_status("iris") and server_status("iris")[0].live,
                timeout=30,
                message="the server never reported live",
            )
            proxy.cut()
            with httpx.Client(base_url=url, timeout=10) as client:
                # requests keep being answered for three beats and more, until the
                # heartbeat has gone stale
                answering_until = time.monotonic() + BEAT * 3 + 5
                answered: list[httpx.Response] = []

                def answered_while_cut_off() -> bool:
                    answer = client.post("/v1/deployments/iris/predict", json=body)
                    assert answer.status_code == 200, answer.text
                    answered.append(answer)
                    if time.monotonic() < answering_until:
                        return False
                    return not server_status("iris")[0].live

                eventually(
                    answered_while_cut_off,
                    timeout=BEAT * 3 + 25,
                    message="the heartbeat never went stale",
                )
                assert len(answered) > 20
                assert client.get("/health/ready").status_code == 200
                proxy.start()
                eventually(
                    lambda: server_status("iris")[0].live,
                    timeout=30,
                    message="the heartbeat did not come back",
                )
                assert client.post("/v1/deployments/iris/predict", json=body).status_code == 200
        log = (root / next(p.name for p in root.glob("server-*.log"))).read_text()
        assert "cannot reach the metadata store" in log and "Traceback" not in log
        assert "reaches the metadata store again" in log
    finally:
        proxy.cut()
        close()
        drop_pg_schema(schema)


# -- the store's heartbeats, and bad input --------------------------------------------------


def _identity(seconds: float = 10.0, started: datetime | None = None) -> ServerIdentity:
    return ServerIdentity(
        server_id=os.urandom(16).hex(),
        host="box",
        address="127.0.0.1:8080",
        pid=123,
        started_at=started or datetime.now(UTC),
        interval_seconds=seconds,
    )


def test_a_beat_replaces_the_servers_rows_and_remove_forgets_them(store: MetadataStore) -> None:
    one, two = _identity(), _identity()
    failed_at = datetime.now(UTC)
    store.servers.beat(one, [ServedState("a", "loading"), ServedState("b", "loading")])
    store.servers.beat(
        one,
        [
            ServedState("a", "serving", 3, {"model_version": "m/3"}),
            ServedState("b", "failed", error="x" * 5000, error_revision=1, error_at=failed_at),
        ],
    )
    store.servers.beat(two, [ServedState("a", "serving", 2, {"model_version": "m/2"})])
    beats = store.servers.of_deployments(["a", "b"])
    assert [(b.served.deployment, b.served.revision) for b in beats].count(("a", 3)) == 1
    assert len(beats) == 3
    failed = next(b for b in beats if b.served.deployment == "b")
    assert failed.served.state == "failed" and len(failed.served.error or "") == 2000
    assert failed.served.error_at == failed_at
    assert failed.server.started_at.tzinfo is not None and not failed.stale()
    store.servers.remove(one.server_id)
    assert [b.server.server_id for b in store.servers.of_deployments()] == [two.server_id]
    assert store.servers.of_deployments([]) == []


def test_old_heartbeats_are_stale_and_pruned_after_a_day(store: MetadataStore) -> None:
    beat = _identity(seconds=0.1)
    store.servers.beat(beat, [ServedState("a", "serving", 1)])
    [found] = store.servers.of_deployments(["a"])
    assert found.stale(datetime.now(UTC) + timedelta(seconds=1))
    assert not found.stale(found.last_seen)
    assert store.servers.prune() == 0
    assert store.servers.prune(timedelta(seconds=-1)) == 1
    assert store.servers.of_deployments() == []


def test_server_status_of_a_deployment_without_servers_is_empty(served: Stores) -> None:
    assert server_status("iris") == []
    assert servers_by_deployment() == {}
    with pytest.raises(NotFound):
        server_status("nosuch")
    for bad in ["../etc", "", "a/b", "x" * 200]:
        with pytest.raises(InvalidInput):
            server_status(bad)


@pytest.mark.parametrize("seconds", [0, -1, 0.01, 3601, math.nan, math.inf, "10", True, None])
def test_a_heartbeat_interval_out_of_range_is_refused(seconds: Any) -> None:
    with pytest.raises(InvalidInput, match="heartbeat interval"):
        check_heartbeat_seconds(seconds)


@pytest.mark.parametrize("value", ["0", "nan", "inf", "abc"])
def test_deploy_serve_refuses_a_bad_heartbeat_in_one_line(project: Stores, value: str) -> None:
    dep.create_deployment("iris", _logged_model())
    result = subprocess.run(
        [LOOPLINE, "deploy", "serve", "iris", "--port", str(free_port()), "--heartbeat", value],
        cwd=project.settings.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Error" in out and "Traceback" not in out and "prediction service on" not in out


# -- dropped fields in the prediction log: journal frames and older files ------------------


def test_dropped_fields_survive_the_journal_and_older_entries_read(tmp_path: Path) -> None:
    import numpy as np

    from loopline.packaging import ColumnSpec
    from loopline.predictions import PredictionBatch, dropped_fields
    from loopline.predictions._journal_frames import (
        append_frame,
        decode_batches,
        encode_batch,
        encode_entry,
        read_frames,
    )
    from loopline.serving._inputs import InputSchema, rows_block

    schema = InputSchema([ColumnSpec("age", "long")])
    sent = [rows_block([{"age": 1, "extra": 2}], schema, "inputs")]
    sent.append(rows_block([{"age": 2}], schema, "inputs"))
    batch = PredictionBatch(
        deployment="d",
        model_version="m/1",
        runtime_version="m/1",
        request_ids=["r1", "r2"],
        times=[datetime.now(UTC)] * 2,
        endpoints=["v1", "v1"],
        latency_ms=np.array([1.0, 2.0]),
        row_counts=np.array([1, 1]),
        block=sent[0].concat(sent),
        predictions=np.array([0, 1]),
        probabilities=None,
        dropped_fields=dropped_fields(sent),
    )
    segment = tmp_path / "segment.wal"
    older = encode_batch(batch)
    del older["df"]  # an entry written before the field existed
    fd = os.open(segment, os.O_WRONLY | os.O_CREAT)
    try:
        append_frame(fd, [encode_entry(encode_batch(batch)), encode_entry(older)])
    finally:
        os.close(fd)
    back, old = decode_batches(read_frames(segment))
    assert back.dropped_fields == [("extra",), ()]
    assert old.dropped_fields is None
    assert [r.dropped_fields for r in back.records()] == [("extra",), ()]
    assert dropped_fields(sent[1:]) is None


def test_log_files_without_dropped_fields_still_read(tmp_path: Path) -> None:
    import numpy as np

    from loopline.packaging import ColumnSpec
    from loopline.predictions import PredictionBatch, read_log_files
    from loopline.predictions._parquet import records_table
    from loopline.serving._inputs import InputSchema, rows_block

    schema = InputSchema([ColumnSpec("age", "long")])
    block = rows_block([{"age": 1, "extra": 2}], schema, "inputs")

    def batch(request_id: str, seconds: int) -> PredictionBatch:
        return PredictionBatch(
            deployment="d",
            model_version="m/1",
            runtime_version="m/1",
            request_ids=[request_id],
            times=[datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)],
            endpoints=["v1"],
            latency_ms=np.array([1.0]),
            row_counts=np.array([1]),
            block=block,
            predictions=np.array([0]),
            probabilities=None,
            dropped_fields=[block.dropped],
        )

    new = records_table([batch("new", 1)])
    old = records_table([batch("old", 0)]).drop_columns(["dropped_fields"])
    pq.write_table(new, tmp_path / "new.parquet")
    pq.write_table(old, tmp_path / "old.parquet")
    both = read_log_files([tmp_path / "old.parquet", tmp_path / "new.parquet"])
    assert both.column("dropped_fields").to_pylist() == [None, ["extra"]]
    alone = read_log_files([tmp_path / "old.parquet"])
    assert alone.column("dropped_fields").to_pylist() == [None]
    assert alone.schema.field("dropped_fields").type == pa.list_(pa.string())
    assert alone.column_names[-1] == "inputs"


def test_a_server_that_cannot_load_anything_reports_the_error(
    served: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (uvicorn on a real port): the first revision a server sees cannot load."""
    from fixtures.serving import live_server
    from loopline.serving.online._heartbeat import attach_heartbeat
    from loopline.serving.online._stored import StoredDeployments
    from loopline.serving.online.app import create_app

    _break("iris", revision=1)
    source = StoredDeployments(["iris"], poll_seconds=0.2)
    app = create_app(source)
    writer = attach_heartbeat(app, source, address="127.0.0.1:0", interval=BEAT)
    with live_server(app, wait=False) as url:
        eventually(
            lambda: server_status("iris") and server_status("iris")[0].error is not None,
            timeout=30,
            message="the server did not report its load error",
        )
        assert httpx.get(f"{url}/health/ready").status_code == 503
        [status] = server_status("iris")
        assert (status.state, status.revision, status.error_revision) == ("failed", None, 2)
        assert status.summary().startswith("serving nothing; revision 2 failed to load:")
        assert "failed ⚠" in _show(capsys, "ls")[1]
    # the lifespan's end removed it
    eventually(lambda: server_status("iris") == [], timeout=30, message="the heartbeat stayed")
    assert writer.beats >= 1


@pytest.mark.empty_store  # the migration itself is under test
def test_db_upgrade_adds_the_heartbeat_table_to_an_older_database(store_uri: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from loopline.store._engine import create_store_engine
    from loopline.store._migrate import HEAD, MIGRATIONS, current_revision, upgrade

    engine = create_store_engine(store_uri)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    assert current_revision(engine) == "0004"
    assert "server_heartbeats" not in inspect(engine).get_table_names()
    assert upgrade(engine) is True
    assert current_revision(engine) == HEAD
    assert "server_heartbeats" in inspect(engine).get_table_names()
    engine.dispose()
