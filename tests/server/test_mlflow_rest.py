"""The real `mlflow` client against loopline's MLflow REST API, on a real port.

One server per module (uvicorn in a thread over a SQLite project: the `loopline server`
command is not on main yet); an unmodified MLflow script (mlflow_client_script.py) runs
against it in its own process through MLFLOW_TRACKING_URI, then the tests read what it
logged back through MlflowClient and through loopline's own API and CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.serving import live_server
from fixtures.waiting import eventually

SCRIPT = Path(__file__).with_name("mlflow_client_script.py")
LOSS_POINTS = 2500


@dataclass(frozen=True)
class Served:
    root: Path
    url: str
    logged: dict[str, Any]  # what the script printed: experiment and run ids


def _register_models(root: Path) -> None:
    """churn/1 and churn/2 (a tiny logistic regression), alias champion -> 1."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopline as ll

    features = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    with ll.Client(project=root) as client:
        client.models.log_model(model, name="churn", input_example=features)
        with client.start_run("training"):
            client.models.log_model(model, name="churn", input_example=features)
        client.registry.set_alias("churn/1", "champion")


# module-scoped servers: one test process runs the module
pytestmark = pytest.mark.xdist_group("test_mlflow_rest")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    folder = tmp_path_factory.mktemp("mlflow")
    root = folder / "proj"
    root.mkdir()
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(("LOOPLINE_", "MLFLOW_")):
                env.delenv(name)
        init_project(root)
        opened = open_stores(project_settings(root))
        try:
            with live_server(create_app(opened), wait=False) as url:
                eventually(
                    lambda: httpx.get(f"{url}/api/v1/health").status_code == 200,
                    ignoring=(httpx.TransportError,),
                    message="the server did not answer /api/v1/health",
                )
                script = _start_script(url, folder)
                _register_models(root)  # meanwhile: the script only tracks runs
                yield Served(root, url, _script_output(script))
        finally:
            opened.close()


def _start_script(url: str, folder: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = url
    return subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _script_output(script: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = script.communicate(timeout=180)
    finally:
        script.kill()
    assert script.returncode == 0, err[-3000:]
    logged: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return logged


@pytest.fixture(scope="module")
def client(served: Served):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=served.url, registry_uri=served.url)


def _loopline_runs(root: Path) -> dict[str, Any]:
    import loopline as ll

    with ll.Client(project=root) as client:
        return {run.name: run for run in client.search_runs("mlflow-compat", max_results=100)}


def test_the_script_s_runs_appear_in_loopline_with_params_metrics_and_tags(
    served: Served,
) -> None:
    from loopline.config import current_user

    runs = _loopline_runs(served.root)
    assert set(runs) == {"baseline", "fold-1", "tuned"}
    baseline = runs["baseline"]
    assert baseline.id == served.logged["baseline"]
    assert baseline.status.value == "FINISHED" and baseline.end_time is not None
    assert baseline.params == {"model": "rf", "max_depth": "6", "n_estimators": "100"}
    assert baseline.metrics["auc"] == 0.91
    assert baseline.metrics["acc"] == pytest.approx(0.7)
    assert baseline.metrics["loss"] == pytest.approx(1.0 / LOSS_POINTS)
    assert {"team": "fraud", "stage": "dev", "data": "v1"}.items() <= baseline.tags.items()
    assert baseline.tags["mlflow.source.name"].endswith("mlflow_client_script.py")
    # the run's user is the server's caller, not a name the client sent
    assert baseline.user == current_user()
    assert "mlflow.user" not in baseline.tags and "mlflow.runName" not in baseline.tags
    assert runs["fold-1"].parent_id == baseline.id
    assert runs["tuned"].params == {"model": "xgb", "max_depth": "4"}


def test_loopline_runs_ls_lists_them(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from loopline.cli.app import app

    monkeypatch.chdir(served.root)
    result = CliRunner().invoke(app, ["runs", "ls", "-e", "mlflow-compat", "--json"])
    assert result.exit_code == 0, result.output
    listed = {run["name"]: run for run in json.loads(result.output)}
    assert set(listed) == {"baseline", "fold-1", "tuned"}
    assert listed["tuned"]["params"] == {"model": "xgb", "max_depth": "4"}
    assert listed["tuned"]["metrics"] == {"auc": 0.95}
    assert listed["tuned"]["tags"]["team"] == "fraud"


def test_mlflow_search_runs_in_the_script_filtered_and_ordered(served: Served) -> None:
    logged = served.logged
    assert logged["search_runs"] == [logged["tuned"], logged["baseline"]]  # auc 0.95, 0.91
    columns = set(logged["search_columns"])
    assert {"params.model", "metrics.auc", "tags.team", "tags.mlflow.runName"} <= columns
    assert {"run_id", "experiment_id", "status", "start_time", "end_time"} <= columns


def test_get_metric_history_returns_every_point_of_the_batches(served: Served, client) -> None:  # type: ignore[no-untyped-def]
    history = client.get_metric_history(served.logged["baseline"], "loss")
    assert [point.step for point in history] == list(range(LOSS_POINTS))
    assert history[9].value == pytest.approx(0.1)
    acc = client.get_metric_history(served.logged["baseline"], "acc")
    assert [(p.step, round(p.value, 6)) for p in acc] == [(0, 0.5), (1, 0.6), (2, 0.7)]


def test_mlflow_client_search_runs_with_filters_and_pages(served: Served, client) -> None:  # type: ignore[no-untyped-def]
    logged, experiment = served.logged, [served.logged["experiment_id"]]

    def ids(filter_string: str, **options: Any) -> list[str]:
        return [run.info.run_id for run in client.search_runs(experiment, filter_string, **options)]

    assert ids("params.model = 'xgb'") == [logged["tuned"]]
    assert ids("tags.team = 'fraud' and metrics.auc < 0.93") == [logged["baseline"]]
    assert ids(f"tags.mlflow.parentRunId = '{logged['baseline']}'") == [logged["child"]]
    assert ids("attributes.run_name LIKE 'fold%'") == [logged["child"]]
    assert ids("attributes.status = 'FINISHED'", order_by=["metrics.auc ASC"]) == [
        logged["child"],
        logged["baseline"],
        logged["tuned"],
    ]
    pages, token = [], None
    while True:
        found = client.search_runs(experiment, max_results=1, page_token=token)
        pages.append([run.info.run_id for run in found])
        token = found.token
        if not token:
            break
    assert sorted(run for page in pages for run in page) == sorted(
        [logged["baseline"], logged["child"], logged["tuned"]]
    )
    assert [len(page) for page in pages] == [1, 1, 1]


def test_delete_and_restore_a_run_through_mlflow(served: Served, client) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities import ViewType

    experiment = served.logged["experiment_id"]
    run = client.create_run(experiment, run_name="to-delete")
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    active = [r.info.run_id for r in client.search_runs([experiment])]
    deleted = [
        r.info.run_id for r in client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    ]
    assert run.info.run_id not in active and deleted == [run.info.run_id]
    assert "to-delete" not in _loopline_runs(served.root)
    client.restore_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"
    assert "to-delete" in _loopline_runs(served.root)


def test_registered_models_and_versions_read_through_mlflow(client) -> None:  # type: ignore[no-untyped-def]
    model = client.get_registered_model("churn")
    assert [v.version for v in model.latest_versions] == ["2"]
    assert model.aliases == {"champion": "1"}
    assert [m.name for m in client.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    assert client.search_registered_models("name = 'other'") == []
    champion = client.get_model_version_by_alias("churn", "champion")
    assert champion.version == "1" and champion.aliases == ["champion"]
    second = client.get_model_version("churn", "2")
    assert second.run_id and second.current_stage == "None"
    versions = client.search_model_versions("name = 'churn'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    assert [v.version for v in client.search_model_versions(f"run_id = '{second.run_id}'")] == ["2"]


def test_errors_reach_the_mlflow_client_with_mlflow_s_codes(served: Served, client) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as changed:
        client.log_param(served.logged["tuned"], "model", "lightgbm")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(served.logged["tuned"]).data.params["model"] == "xgb"
    with pytest.raises(MlflowException) as refused:
        client.search_runs(
            [served.logged["experiment_id"]], "metrics.auc > 0.9 OR metrics.auc < 0.1"
        )
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as no_model:
        client.get_registered_model("nothing")
    assert no_model.value.error_code == "RESOURCE_DOES_NOT_EXIST"
