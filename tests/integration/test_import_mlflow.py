"""`loopline import mlflow`: a real MLflow store, written by the `mlflow` package, copied
into a loopline project on SQLite and PostgreSQL, then imported again.

The MLflow store is built once per module in a subprocess (mlflow's import and its 70
schema migrations take most of the time, and mlflow's warnings and global tracking URI
stay out of this process); each test imports from its own copy of the database file.
"""

from __future__ import annotations

import http.server
import json
import math
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import loopline as ll
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, NotFound, StoreUnavailable
from loopline.importers import import_mlflow
from loopline.project import Stores

BUILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from typing import Any
import mlflow, numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

root = Path(sys.argv[1])
mlflow.set_tracking_uri(sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{root / 'mlflow.db'}")
ids = {}
mlflow.create_experiment("exp-a", artifact_location=(root / "art" / "a").as_uri())
mlflow.create_experiment("exp-b", artifact_location=(root / "art" / "b").as_uri())
mlflow.set_experiment("exp-a")
model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
with mlflow.start_run(run_name="train") as run:
    ids["train"] = run.info.run_id
    mlflow.log_params({"lr": 0.1, "depth": 3})
    for step in range(20):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metric("broken", float("nan"), step=0)
    mlflow.set_tag("team", "fraud")
    (root / "note.txt").write_text("hello from mlflow")
    mlflow.log_artifact(str(root / "note.txt"), "notes")
    # pip_requirements given: MLflow would otherwise infer them in a subprocess (slow)
    mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                             registered_model_name="clf", pip_requirements=["scikit-learn"])
    mlflow.sklearn.log_model(model, name="pickled", serialization_format="cloudpickle",
                             registered_model_name="clf", pip_requirements=["scikit-learn"])
    with mlflow.start_run(run_name="child", nested=True) as child:
        ids["child"] = child.info.run_id
        mlflow.log_metrics({"acc": 0.5}, step=0)
        mlflow.log_metrics({"acc": 0.75}, step=1)
mlflow.set_experiment("exp-b")
with mlflow.start_run(run_name="failed") as run:
    ids["failed"] = run.info.run_id
    mlflow.log_param("kind", "bad")
    mlflow.end_run("FAILED")
with mlflow.start_run(run_name="gone") as run:
    ids["deleted"] = run.info.run_id
client = MlflowClient()
client.delete_run(ids["deleted"])
client.set_registered_model_alias("clf", "champion", 1)
client.set_model_version_tag("clf", "1", "reviewed", "yes")
client.update_registered_model("clf", description="flags fraud")
client.set_registered_model_tag("clf", "owner", "risk")
print(json.dumps(ids))
"""


# the MLflow store is built once per process that runs this module: keep it on one
pytestmark = pytest.mark.xdist_group("mlflow-import")


_built: list[tuple[Path, dict[str, str]]] = []  # the process's one build (pytest set it
# up again for each store back-end of the tests that use it: ~25 s each in CI)


@pytest.fixture(scope="module")
def mlflow_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The MLflow store, built once per test process (tests import from copies of it)."""
    if not _built:
        root = tmp_path_factory.mktemp("mlflow-source")
        _built.append((root, build(root)))
    return _built[0]


def build(root: Path, *tracking_uri: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(root), *tracking_uri],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ids: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return ids


@pytest.fixture
def source(mlflow_built: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    """This test's copy of the MLflow database (its artifacts stay where MLflow put them)."""
    copy = tmp_path / "mlflow.db"
    shutil.copy(mlflow_built[0] / "mlflow.db", copy)
    return copy


@pytest.fixture
def ids(mlflow_built: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return mlflow_built[1]


def mlflow_metrics(db: Path, run_id: str, key: str) -> list[tuple[int, int, float | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT step, timestamp, value, is_nan FROM metrics WHERE run_uuid=? AND key=? "
            "ORDER BY step, timestamp",
            (run_id, key),
        ).fetchall()
    return [(step, ts, None if nan else value) for step, ts, value, nan in rows]


def loopline_metrics(run_id: str, key: str) -> list[tuple[int, int, float | None]]:
    return [
        (
            p.step,
            int(p.timestamp.timestamp() * 1000),
            None if math.isnan(p.value) else p.value,
        )
        for p in ll.get_metric_history(run_id, key)
    ]


def mlflow_run_row(db: Path, run_id: str) -> sqlite3.Row:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM runs WHERE run_uuid=?", (run_id,)).fetchone()


def count_rows(opened: Stores) -> dict[str, int]:
    from sqlalchemy import func, select

    from loopline.store._schema import metric_points, model_versions, params, run_links, runs, tags

    counts = {}
    with opened.metadata.runs._db.read() as conn:
        for table in (runs, params, tags, metric_points, run_links, model_versions):
            counts[table.name] = conn.execute(select(func.count()).select_from(table)).scalar()
    return counts


# -- what arrives ------------------------------------------------------------------------


def test_import_copies_runs_with_times_history_params_tags_and_artifacts(
    project: Stores, source: Path, ids: dict[str, str], tmp_path: Path
) -> None:
    summary = import_mlflow(f"sqlite:///{source}")

    assert summary.failed == [] and summary.models.failed == []
    assert sorted(summary.experiments) == ["exp-a", "exp-b"]
    assert (summary.new, summary.updated, summary.unchanged) == (4, 0, 0)
    train = ll.get_run(ids["train"])  # the MLflow run id is kept as the run's id
    row = mlflow_run_row(source, ids["train"])
    assert train.experiment == "exp-a" and train.name == "train"
    assert train.status.value == "FINISHED"
    assert int(train.start_time.timestamp() * 1000) == row["start_time"]
    assert train.end_time is not None
    assert int(train.end_time.timestamp() * 1000) == row["end_time"]
    assert train.user == row["user_id"]
    assert train.params == {"lr": "0.1", "depth": "3"}
    assert train.tags["team"] == "fraud" and train.tags["mlflow.run_id"] == ids["train"]
    # every point, with its own step and timestamp; NaN is kept as NaN
    assert loopline_metrics(train.id, "loss") == mlflow_metrics(source, ids["train"], "loss")
    assert len(loopline_metrics(train.id, "loss")) == 20
    assert loopline_metrics(train.id, "broken") == [
        (0, mlflow_metrics(source, ids["train"], "broken")[0][1], None)
    ]
    got = ll.download_artifacts(train.id, "notes/note.txt", tmp_path / "out")
    assert got[0].read_text() == "hello from mlflow"
    child = ll.get_run(ids["child"])
    assert child.parent_id == train.id
    assert [p.value for p in ll.get_metric_history(child.id, "acc")] == [0.5, 0.75]
    assert ll.get_run(ids["failed"]).status.value == "FAILED"
    deleted = project.metadata.runs.search_runs(include_deleted=True)
    assert ids["deleted"] in {r.id for r in deleted}
    assert ids["deleted"] not in {r.id for r in ll.search_runs()}


def test_import_repackages_the_skops_version_and_keeps_the_pickled_one_as_files(
    project: Stores, source: Path, ids: dict[str, str]
) -> None:
    summary = import_mlflow(f"sqlite:///{source}")

    assert summary.models.repackaged == ["clf/1"]
    assert len(summary.models.kept) == 1 and summary.models.kept[0].startswith("clf/2:")
    assert "cloudpickle" in summary.models.kept[0]
    versions = ll.registry.list_versions("clf")
    assert [v.tags["mlflow.version"] for v in versions] == ["1"]
    version = versions[0]
    assert version.flavor == "sklearn" and version.tags["reviewed"] == "yes"
    assert version.run_id == ids["train"]
    loaded = ll.models.load("clf@champion")  # the alias followed its MLflow version
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]
    model = ll.registry.get_model("clf")
    assert model.description == "flags fraud" and model.tags["owner"] == "risk"
    run = ll.get_run(ids["train"])
    note = run.tags["loopline.import.not_repackaged"]
    assert note.startswith("clf/2: scikit-learn saved as cloudpickle")
    kept = {link.name for link in ll.list_artifacts(run.id, "mlflow-models/clf/v2")}
    assert {"mlflow-models/clf/v2/MLmodel", "mlflow-models/clf/v2/model.pkl"} <= kept


def test_a_second_import_adds_nothing_and_a_changed_run_is_brought_up_to_date(
    project: Stores, source: Path, ids: dict[str, str]
) -> None:
    uri = f"sqlite:///{source}"
    import_mlflow(uri)
    before = count_rows(project)

    again = import_mlflow(uri)

    assert (again.new, again.updated, again.unchanged) == (0, 0, 4)
    assert again.models.repackaged == [] and again.models.kept == []
    assert again.models.unchanged == 2 and again.models.aliases == 0
    assert count_rows(project) == before
    # MLflow logs more points to a run and ends it differently: the next import follows
    with sqlite3.connect(source) as conn:
        last = conn.execute("SELECT max(timestamp) FROM metrics").fetchone()[0]
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES ('loss', ?, ?, ?, ?, 0)",
            [(0.01 * s, last + s, ids["train"], 20 + s) for s in range(5)],
        )
        conn.execute("UPDATE runs SET status='KILLED' WHERE run_uuid=?", (ids["train"],))

    third = import_mlflow(uri)

    assert (third.new, third.updated, third.unchanged) == (0, 1, 3)
    assert loopline_metrics(ids["train"], "loss") == mlflow_metrics(source, ids["train"], "loss")
    assert len(loopline_metrics(ids["train"], "loss")) == 25
    run = ll.get_run(ids["train"])
    assert run.status.value == "KILLED" and run.metrics["loss"] == pytest.approx(0.04)
    # the note about the model version it could not re-package survived the update
    assert "clf/2" in run.tags["loopline.import.not_repackaged"]
    after = count_rows(project)
    assert after["metric_points"] == before["metric_points"] + 5
    assert after["runs"] == before["runs"] and after["model_versions"] == 1


def test_experiment_filter_and_dry_run(project: Stores, source: Path, ids: dict[str, str]) -> None:
    uri = f"sqlite:///{source}"
    dry = import_mlflow(uri, dry_run=True)
    assert (dry.new, dry.updated) == (4, 0) and dry.models.planned == ["clf/1", "clf/2"]
    assert project.metadata.runs.search_runs(include_deleted=True) == []
    assert project.metadata.runs.list_experiments() == []
    assert project.metadata.models.list_models() == []

    summary = import_mlflow(uri, experiments=["exp-b"])

    assert summary.experiments == ["exp-b"] and summary.new == 2
    imported = {r.id for r in project.metadata.runs.search_runs(include_deleted=True)}
    assert imported == {ids["failed"], ids["deleted"]}
    # the model's runs were not imported: no version comes without its run
    assert summary.models.repackaged == [] and summary.models.kept == []


@pytest.fixture(scope="module")
def mlflow_on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """The same MLflow store in a fresh PostgreSQL database (mlflow over psycopg 3)."""
    from fixtures.stores import PG_URL, _pg_admin

    try:
        admin = _pg_admin()
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"mlflow_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = PG_URL.split("://", 1)[1].rsplit("/", 1)[0].split("?")[0]
    try:
        root = tmp_path_factory.mktemp("mlflow-pg-source")
        ids = build(root, f"postgresql+psycopg://{server}/{name}")
        yield f"postgresql://{server}/{name}", ids
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
# the source is what is under test here; the project's own back-end is tested above
@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_import_from_a_postgresql_mlflow_store(
    project: Stores, mlflow_on_postgres: tuple[str, dict[str, str]]
) -> None:
    uri, ids = mlflow_on_postgres

    summary = import_mlflow(uri)

    assert summary.failed == [] and (summary.new, summary.unchanged) == (4, 0)
    assert [p.step for p in ll.get_metric_history(ids["train"], "loss")] == list(range(20))
    assert math.isnan(ll.get_metric_history(ids["train"], "broken")[0].value)
    assert ll.get_run(ids["child"]).parent_id == ids["train"]
    assert summary.models.repackaged == ["clf/1"]
    assert ll.models.load("clf@champion").predict(np.array([[3.0]]))[0] == 1
    assert import_mlflow(uri).unchanged == 4


def _log_over_mlflow_rest(url: str) -> str:
    """One run logged through the MLflow REST API, as the mlflow client sends it."""
    api = f"{url}/api/2.0/mlflow"
    with httpx.Client(timeout=30) as http:

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = http.post(f"{api}/{path}", json=body)
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

        experiment = call("experiments/create", {"name": "rest-exp"})["experiment_id"]
        run = call(
            "runs/create",
            {"experiment_id": experiment, "run_name": "over-http", "start_time": 1_700_000_000_000},
        )["run"]["info"]["run_id"]
        points = [
            {"key": "loss", "value": 1 / (s + 1), "timestamp": 1_700_000_000_100 + s, "step": s}
            for s in range(30)
        ]
        call(
            "runs/log-batch",
            {
                "run_id": run,
                "metrics": points,
                "params": [{"key": "lr", "value": "0.3"}],
                "tags": [{"key": "team", "value": "fraud"}],
            },
        )
        call("runs/update", {"run_id": run, "status": "FINISHED", "end_time": 1_700_000_009_000})
    return str(run)


def test_import_from_a_servers_mlflow_rest_api(
    served_stores: Stores, platform_server: Any, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """The REST reader against a real server: loopline's own MLflow API (issue 15)."""
    pytest.importorskip("loopline.server.api.mlflow", reason="the server's MLflow API")
    from loopline.config import init_project
    from loopline.project import close, configure

    dest = tmp_path / "dest"
    dest.mkdir()
    init_project(dest)
    clean_env.chdir(dest)
    with platform_server.serving(served_stores) as url:
        run_id = _log_over_mlflow_rest(url)
        configure(project=dest)
        try:
            summary = import_mlflow(url)
            again = import_mlflow(url)
            run = ll.get_run(run_id)
            history = ll.get_metric_history(run_id, "loss")
        finally:
            close()

    assert summary.failed == [] and summary.new == 1 and summary.metric_points == 30
    assert again.unchanged == 1 and again.new == again.updated == 0
    assert run.name == "over-http" and run.status.value == "FINISHED"
    assert run.params == {"lr": "0.3"} and run.tags["team"] == "fraud"
    served = served_stores.metadata.runs
    assert (run.start_time, run.end_time) == (
        served.get_run(run_id).start_time,
        served.get_run(run_id).end_time,
    )
    assert history == served.get_metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(s, 1 / (s + 1)) for s in range(30)]


# -- bad input: one line, exit != 0, nothing half-imported ------------------------------


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_unknown_experiment_name_is_refused_before_anything_is_written(
    project: Stores, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["import", "mlflow", "--from", f"sqlite:///{source}", "--experiment", "nope"])

    assert code == NotFound.exit_code
    err = capsys.readouterr().err
    assert "no experiment 'nope'" in err and "exp-a" in err and "Traceback" not in err
    assert project.metadata.runs.search_runs(include_deleted=True) == []


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_a_run_whose_artifact_location_escapes_is_not_imported_and_the_rest_are(
    project: Stores, source: Path, ids: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(source) as conn:
        escaping = mlflow_run_row(source, ids["failed"])["artifact_uri"] + "/../../../../../etc"
        conn.execute("UPDATE runs SET artifact_uri=? WHERE run_uuid=?", (escaping, ids["failed"]))

    code = cli(["import", "mlflow", "--from", f"sqlite:///{source}"])

    assert code == 1
    captured = capsys.readouterr()
    assert f"not imported: {ids['failed']}: artifact location" in captured.out
    assert "'..'" in captured.out and "Traceback" not in captured.err
    with pytest.raises(NotFound):
        ll.get_run(ids["failed"])
    assert ll.get_run(ids["train"]).params["lr"] == "0.1"


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_a_symbolic_link_among_a_runs_artifacts_is_refused(
    project: Stores, source: Path, ids: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / "secret").symlink_to("/etc/passwd")
    with sqlite3.connect(source) as conn:
        conn.execute(
            "UPDATE runs SET artifact_uri=? WHERE run_uuid=?", (folder.as_uri(), ids["failed"])
        )

    summary = import_mlflow(f"sqlite:///{source}", experiments=["exp-b"])

    assert [line.split(":")[0] for line in summary.failed] == [ids["failed"]]
    assert "symbolic link" in summary.failed[0]
    assert {r.id for r in project.metadata.runs.search_runs(include_deleted=True)} == {
        ids["deleted"]
    }


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_artifacts_elsewhere_are_noted_and_the_run_imported_without_them(
    project: Stores, source: Path, ids: dict[str, str]
) -> None:
    with sqlite3.connect(source) as conn:
        conn.execute(
            "UPDATE runs SET artifact_uri='s3://bucket/mlflow/1/x/artifacts' WHERE run_uuid=?",
            (ids["failed"],),
        )

    summary = import_mlflow(f"sqlite:///{source}", experiments=["exp-b"])

    assert summary.failed == [] and summary.new == 2
    run = ll.get_run(ids["failed"])
    assert run.tags["loopline.import.artifacts"].startswith("not copied: the artifacts of run")
    assert "s3://bucket/mlflow/1/x/artifacts" in run.tags["loopline.import.artifacts"]
    assert run.params == {"kind": "bad"} and ll.list_artifacts(run.id) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def plain_http_server() -> Iterator[str]:
    """A real HTTP server that is not MLflow (it answers 404 to everything but /)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.daemon_threads = True  # closing does not wait on a kept-alive connection
    server.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_bad_sources_get_one_line_errors_and_write_nothing(
    project: Stores,
    source: Path,
    tmp_path: Path,
    plain_http_server: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_mlflow = tmp_path / "other.db"
    with sqlite3.connect(not_mlflow) as conn:
        conn.execute("CREATE TABLE things (id INTEGER)")
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE alembic_version SET version_num='ffffffffffff'")
    port = _closed_port()
    cases: list[tuple[str, int, str]] = [
        (f"sqlite:///{tmp_path / 'missing.db'}", NotFound.exit_code, "no MLflow database"),
        (f"sqlite:///{not_mlflow}", InvalidInput.exit_code, "not an MLflow tracking database"),
        (f"sqlite:///{source}", InvalidInput.exit_code, "revision 'ffffffffffff'"),
        (
            f"postgresql://postgres:s3cret@127.0.0.1:{port}/mlflow",
            StoreUnavailable.exit_code,
            "cannot read",
        ),
        (f"http://127.0.0.1:{port}", StoreUnavailable.exit_code, "cannot reach"),
        (plain_http_server, NotFound.exit_code, "is it an MLflow tracking server"),
        ("ftp://example.com/mlflow", InvalidInput.exit_code, "cannot import from"),
        ("", InvalidInput.exit_code, "needs an MLflow store URI"),
    ]
    for uri, exit_code, message in cases:
        code = cli(["import", "mlflow", "--from", uri])
        err = capsys.readouterr().err
        assert code == exit_code, (uri, err)
        assert message in err, (uri, err)
        assert "Traceback" not in err and "s3cret" not in err
        assert err.strip().splitlines()[0].startswith("Error:")
    assert project.metadata.runs.list_experiments() == []
