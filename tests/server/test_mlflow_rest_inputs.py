"""The MLflow REST API's answers to good and bad input, in-process, on SQLite and
PostgreSQL: MLflow's error codes and statuses, its limits, NaN and infinite metrics,
pages, filters, roles, and nothing stored by a refused request."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

API = "/api/2.0/mlflow"


def _test_client(app: Any) -> Any:
    with warnings.catch_warnings():  # starlette asks for httpx2, which is not installed
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient
    return TestClient(app)


@pytest.fixture
def api(project):  # type: ignore[no-untyped-def]
    from loopline.server import create_app

    with _test_client(create_app(project)) as client:
        yield client


@pytest.fixture
def run_id(api) -> str:  # type: ignore[no-untyped-def]
    answer = api.post(f"{API}/runs/create", json={"experiment_id": "0", "run_name": "r"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"]["info"]["run_id"])


def _error(answer: Any, status: int, code: str, case: object = None) -> str:
    assert answer.status_code == status, (case, answer.text)
    body = answer.json()
    assert body["error_code"] == code, body
    # loopline's own shape rides beside MLflow's; MLflow's message carries the hint too
    assert body["message"].startswith(body["error"]["message"]), body
    return str(body["message"])


def _run(api: Any, run_id: str) -> dict[str, Any]:
    answer = api.get(f"{API}/runs/get", params={"run_id": run_id})
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()["run"]
    return run


def _history(api: Any, run_id: str, key: str) -> list[dict[str, Any]]:
    answer = api.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": key})
    assert answer.status_code == 200, answer.text
    return list(answer.json().get("metrics", []))


def test_unknown_ids_and_names_answer_404_resource_does_not_exist(api) -> None:  # type: ignore[no-untyped-def]
    unknown = "0123456789abcdef0123456789abcdef"
    metric = {"run_id": unknown, "key": "k", "value": 1, "timestamp": 1}
    requests = [
        ("get", "/runs/get", {"run_id": unknown}),
        ("post", "/runs/log-metric", metric),
        ("post", "/runs/log-parameter", {"run_id": unknown, "key": "k", "value": "v"}),
        ("post", "/runs/set-tag", {"run_id": unknown, "key": "k", "value": "v"}),
        ("post", "/runs/log-batch", {"run_id": unknown, "metrics": []}),
        ("post", "/runs/update", {"run_id": unknown, "status": "FINISHED"}),
        ("post", "/runs/delete", {"run_id": unknown}),
        ("post", "/runs/restore", {"run_id": unknown}),
        ("get", "/metrics/get-history", {"run_id": unknown, "metric_key": "k"}),
        ("get", "/experiments/get", {"experiment_id": unknown}),
        ("get", "/experiments/get-by-name", {"experiment_name": "nope"}),
        ("post", "/runs/create", {"experiment_id": unknown}),
        ("get", "/registered-models/get", {"name": "nope"}),
        ("get", "/model-versions/get", {"name": "nope", "version": "1"}),
        ("get", "/registered-models/alias", {"name": "nope", "alias": "champion"}),
    ]
    for method, path, payload in requests:
        if method == "get":
            answer = api.get(API + path, params=payload)
        else:
            answer = api.post(API + path, json=payload)
        _error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


def test_an_experiment_name_is_not_an_experiment_id(api) -> None:  # type: ignore[no-untyped-def]
    api.post(f"{API}/experiments/create", json={"name": "churn"})
    answer = api.get(f"{API}/experiments/get", params={"experiment_id": "churn"})
    _error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


def test_malformed_bodies_answer_400_and_store_nothing(api, run_id) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    for body in ['{"run_id": "', "[1, 2]", '"text"', "", "\xff"]:
        answer = api.post(f"{API}/runs/log-batch", content=body.encode("utf-8"), headers=headers)
        _error(answer, 400, "INVALID_PARAMETER_VALUE")
    answer = api.post(f"{API}/runs/log-metric", content=b"{not json", headers=headers)
    assert "not valid JSON" in _error(answer, 400, "INVALID_PARAMETER_VALUE")
    assert _run(api, run_id)["data"].get("metrics") is None


WRONG_TYPES = [
    ("/runs/log-metric", {"value": "abc"}),
    ("/runs/log-metric", {"value": True}),
    ("/runs/log-metric", {"value": None}),
    ("/runs/log-metric", {"timestamp": "soon"}),
    ("/runs/log-metric", {"timestamp": 2**63}),
    ("/runs/log-metric", {"step": 1.5}),
    ("/runs/log-metric", {"key": 7}),
    ("/runs/log-metric", {"key": "../escape"}),
    ("/runs/log-metric", {"key": "a//b"}),
    ("/runs/log-metric", {"run_id": 12}),
    ("/runs/log-metric", {"run_id": "not-an-id"}),
    ("/runs/log-batch", {"metrics": {"key": "k"}}),
    ("/runs/log-batch", {"metrics": [{"key": "k", "value": 1}]}),  # no timestamp
    ("/runs/log-batch", {"params": [{"key": "p", "value": 3}]}),
    ("/runs/log-batch", {"tags": "team=a"}),
]


def test_wrong_types_and_bad_keys_answer_400_and_store_nothing(api, run_id) -> None:  # type: ignore[no-untyped-def]
    for path, change in WRONG_TYPES:
        body = {"run_id": run_id, "key": "k", "value": 1.0, "timestamp": 1, "step": 0} | change
        _error(api.post(API + path, json=body), 400, "INVALID_PARAMETER_VALUE", case=change)
    data = _run(api, run_id)["data"]
    assert data.get("metrics") is None and data.get("params") is None
    assert [tag["key"] for tag in data["tags"]] == ["mlflow.runName", "mlflow.user"]


def test_nan_and_infinite_metric_values_are_kept_as_mlflow_keeps_them(api, run_id) -> None:  # type: ignore[no-untyped-def]
    sent = ['"NaN"', "NaN", '"Infinity"', '"-Infinity"', "1e308"]
    for step, value in enumerate(sent):
        body = f'{{"run_id": "{run_id}", "key": "v", "value": {value}, "timestamp": 5, '
        body += f'"step": {step}}}'
        answer = api.post(
            f"{API}/runs/log-metric", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
    values = [point["value"] for point in _history(api, run_id, "v")]
    assert values == ["NaN", "NaN", "Infinity", "-Infinity", 1e308]
    assert _run(api, run_id)["data"]["metrics"] == [{"key": "v", "value": 1e308}]
    batch = {"run_id": run_id, "metrics": [{"key": "w", "value": "NaN", "timestamp": 1}]}
    assert api.post(f"{API}/runs/log-batch", json=batch).status_code == 200
    assert _run(api, run_id)["data"]["metrics"][1] == {"key": "w", "value": "NaN"}


def _points(count: int) -> list[dict[str, Any]]:
    return [{"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(count)]


def _pairs(count: int) -> list[dict[str, str]]:
    return [{"key": f"k{i}", "value": "v"} for i in range(count)]


def test_batches_over_mlflow_s_limits_are_refused_and_store_nothing(api, run_id) -> None:  # type: ignore[no-untyped-def]
    too_big = [
        {"metrics": _points(1001)},
        {"params": _pairs(101)},
        {"tags": _pairs(101)},
        {"metrics": _points(950), "params": _pairs(30), "tags": _pairs(30)},  # 1010 in all
        {"tags": [{"key": "big", "value": "x" * 7000}] * 150},  # over 1 MB
    ]
    for extra in too_big:
        answer = api.post(f"{API}/runs/log-batch", json={"run_id": run_id} | extra)
        _error(answer, 400, "INVALID_PARAMETER_VALUE")
    data = _run(api, run_id)["data"]
    assert data.get("metrics") is None and data.get("params") is None
    at_limit = {"run_id": run_id, "metrics": _points(1000), "params": [], "tags": []}
    assert api.post(f"{API}/runs/log-batch", json=at_limit).status_code == 200
    assert len(_history(api, run_id, "m")) == 1000


def test_a_changed_param_is_refused_and_nothing_of_its_batch_is_stored(api, run_id) -> None:  # type: ignore[no-untyped-def]
    first = {"run_id": run_id, "key": "model", "value": "rf"}
    assert api.post(f"{API}/runs/log-parameter", json=first).status_code == 200
    assert api.post(f"{API}/runs/log-parameter", json=first).status_code == 200  # same value
    batch = {
        "run_id": run_id,
        "params": [{"key": "model", "value": "xgb"}],
        "metrics": _points(3),
        "tags": [{"key": "team", "value": "a"}],
    }
    _error(api.post(f"{API}/runs/log-batch", json=batch), 400, "INVALID_PARAMETER_VALUE")
    data = _run(api, run_id)["data"]
    assert data["params"] == [{"key": "model", "value": "rf"}]
    assert data.get("metrics") is None and "team" not in {t["key"] for t in data["tags"]}


BAD_SEARCHES = [
    {"filter": "metrics.a > 1 OR metrics.a < 0"},
    {"filter": "not metrics.a > 1"},
    {"filter": "attributes.artifact_uri = 'x'"},
    {"filter": "datasets.name = 'train'"},
    {"filter": "metrics.auc = 'high'"},
    {"filter": "params.depth = 3"},
    {"filter": "params.model = 'rf"},
    {"filter": "params.model IN ('a', 'b')"},
    {"filter": "widgets.x = 'a'"},
    {"filter": "metrics.a >"},
    {"filter": "metrics.a > 1e999"},
    {"filter": "x" * 10_001},
    {"order_by": ["metrics.auc sideways"]},
    {"order_by": ["attributes.artifact_uri"]},
    {"page_token": "not base64!"},
    {"page_token": "eyJvZmZzZXQiOiAtMX0="},  # {"offset": -1}
    {"max_results": 50_001},
    {"max_results": 0},
    {"experiment_ids": "0"},
    {"run_view_type": "SOME"},
]


def test_bad_searches_answer_400(api) -> None:  # type: ignore[no-untyped-def]
    for search in BAD_SEARCHES:
        answer = api.post(f"{API}/runs/search", json={"experiment_ids": ["0"]} | search)
        _error(answer, 400, "INVALID_PARAMETER_VALUE", case=search)


def test_bad_registry_names_answer_400(api) -> None:  # type: ignore[no-untyped-def]
    for path, params in [
        ("/registered-models/get", {"name": "../../etc/passwd"}),
        ("/registered-models/get", {"name": "a/b"}),
        ("/model-versions/get", {"name": "churn", "version": "one"}),
        ("/model-versions/get", {"name": "churn", "version": "-1"}),
        ("/registered-models/alias", {"name": "churn", "alias": "bad alias"}),
        ("/registered-models/alias", {"name": "..", "alias": "champion"}),
        ("/registered-models/search", {"filter": "version_number > 1"}),
        ("/registered-models/search", {"max_results": 1001}),
        ("/model-versions/search", {"filter": "name = 1"}),
    ]:
        _error(api.get(API + path, params=params), 400, "INVALID_PARAMETER_VALUE")


def test_experiments_create_get_and_search(api) -> None:  # type: ignore[no-untyped-def]
    created = api.post(f"{API}/experiments/create", json={"name": "churn"}).json()
    again = api.post(f"{API}/experiments/create", json={"name": "churn"})
    _error(again, 400, "RESOURCE_ALREADY_EXISTS")
    elsewhere = {"name": "b", "artifact_location": "s3://bucket/x"}
    _error(api.post(f"{API}/experiments/create", json=elsewhere), 400, "INVALID_PARAMETER_VALUE")
    api.post(f"{API}/experiments/create", json={"name": "fraud"})
    found = api.get(f"{API}/experiments/get-by-name", params={"experiment_name": "churn"})
    experiment = found.json()["experiment"]
    assert experiment["experiment_id"] == created["experiment_id"]
    assert experiment["lifecycle_stage"] == "active" and experiment["creation_time"] > 0
    searched = api.post(f"{API}/experiments/search", json={"filter": "name LIKE 'ch%'"}).json()
    assert [e["name"] for e in searched["experiments"]] == ["churn"]
    paged = api.get(
        f"{API}/experiments/search", params={"max_results": 1, "order_by": "name ASC"}
    ).json()
    assert [e["name"] for e in paged["experiments"]] == ["churn"] and paged["next_page_token"]


def test_experiment_0_is_loopline_s_default_experiment(api, run_id) -> None:  # type: ignore[no-untyped-def]
    import loopline as ll

    assert [run.id for run in ll.search_runs("default")] == [run_id]
    found = api.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).json()
    assert [run["info"]["run_id"] for run in found["runs"]] == [run_id]
    assert api.get(f"{API}/experiments/get", params={"experiment_id": "0"}).status_code == 200


def test_the_run_s_user_is_the_caller_not_the_user_the_client_names(api) -> None:  # type: ignore[no-untyped-def]
    from loopline.config import current_user

    body = {
        "experiment_id": "0",
        "user_id": "mallory",
        "tags": [{"key": "mlflow.user", "value": "mallory"}, {"key": "team", "value": "a"}],
    }
    run = api.post(f"{API}/runs/create", json=body).json()["run"]
    assert run["info"]["user_id"] == current_user()
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    assert tags["mlflow.user"] == current_user() and tags["team"] == "a"
    assert run["info"]["run_name"] and tags["mlflow.runName"] == run["info"]["run_name"]
    assert run["info"]["run_uuid"] == run["info"]["run_id"]


def test_update_run_ends_resumes_and_renames(api, run_id) -> None:  # type: ignore[no-untyped-def]
    update = {"run_id": run_id, "status": "FAILED", "end_time": 1_700_000_000_000}
    info = api.post(f"{API}/runs/update", json=update).json()["run_info"]
    assert (info["status"], info["end_time"]) == ("FAILED", 1_700_000_000_000)
    resumed = api.post(f"{API}/runs/update", json={"run_uuid": run_id, "status": 1}).json()
    assert resumed["run_info"]["status"] == "RUNNING" and "end_time" not in resumed["run_info"]
    rename = {"run_id": run_id, "key": "mlflow.runName", "value": "renamed"}
    assert api.post(f"{API}/runs/set-tag", json=rename).status_code == 200
    assert _run(api, run_id)["info"]["run_name"] == "renamed"
    for status in ("SCHEDULED", "DONE", 9):
        bad = api.post(f"{API}/runs/update", json={"run_id": run_id, "status": status})
        _error(bad, 400, "INVALID_PARAMETER_VALUE")


def test_a_deleted_run_takes_no_writes_and_leaves_searches(api, run_id) -> None:  # type: ignore[no-untyped-def]
    assert api.post(f"{API}/runs/delete", json={"run_id": run_id}).status_code == 200
    metric = {"run_id": run_id, "key": "k", "value": 1, "timestamp": 1}
    _error(api.post(f"{API}/runs/log-metric", json=metric), 400, "INVALID_PARAMETER_VALUE")
    assert _run(api, run_id)["info"]["lifecycle_stage"] == "deleted"

    def searched(view: object) -> list[str]:
        body = {"experiment_ids": ["0"], "run_view_type": view}
        return [
            r["info"]["run_id"]
            for r in api.post(f"{API}/runs/search", json=body).json().get("runs", [])
        ]

    assert searched("ACTIVE_ONLY") == [] and searched("DELETED_ONLY") == [run_id]
    assert searched(3) == [run_id]


def test_search_runs_pages_filters_and_orders(api) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for number in range(5):
        run = api.post(f"{API}/runs/create", json={"run_name": f"r{number}"}).json()["run"]
        ids.append(run["info"]["run_id"])
        metric = {"run_id": ids[-1], "key": "auc", "value": number / 10, "timestamp": 1}
        api.post(f"{API}/runs/log-metric", json=metric)
    seen, token = [], None
    while True:
        body = {"experiment_ids": ["0"], "max_results": 2, "order_by": ["metrics.auc DESC"]}
        answer = api.post(
            f"{API}/runs/search", json=body | ({"page_token": token} if token else {})
        )
        seen += [run["info"]["run_id"] for run in answer.json()["runs"]]
        token = answer.json().get("next_page_token")
        if not token:
            break
    assert seen == ids[::-1]
    body = {"experiment_ids": ["0"], "filter": "metrics.auc >= 0.2 and attributes.run_name != 'r3'"}
    found = api.post(f"{API}/runs/search", json=body).json()["runs"]
    assert sorted(run["info"]["run_name"] for run in found) == ["r2", "r4"]
    by_id = {"experiment_ids": ["0"], "filter": f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')"}
    assert len(api.post(f"{API}/runs/search", json=by_id).json()["runs"]) == 2
    assert api.post(f"{API}/runs/search", json={"experiment_ids": []}).json() == {}


@pytest.fixture
def reader_api(project) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from loopline.server import create_app
    from loopline.server._permissions import LocalAuthenticator, Role

    app = create_app(project, authenticator=LocalAuthenticator("rita", Role.READER))
    with _test_client(app) as client:
        yield client


def test_a_reader_reads_but_cannot_write(reader_api) -> None:  # type: ignore[no-untyped-def]
    for path, body in [
        ("/runs/create", {"experiment_id": "0"}),
        ("/experiments/create", {"name": "x"}),
        ("/runs/log-batch", {"run_id": "0" * 32}),
        ("/runs/delete", {"run_id": "0" * 32}),
    ]:
        _error(reader_api.post(API + path, json=body), 403, "PERMISSION_DENIED")
    assert reader_api.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).status_code == 200
    assert reader_api.get(f"{API}/registered-models/search").status_code == 200


def test_reads_and_searches_need_reader_and_changes_need_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app
    from loopline.server._permissions import Role, all_routes, declared_permission

    init_project(tmp_path)
    opened = open_stores(project_settings(tmp_path))
    try:
        routes = [r for r in all_routes(create_app(opened).routes) if r.path.startswith(API)]
    finally:
        opened.close()
    assert len(routes) == 21
    for route in routes:
        reads = route.methods == {"GET"} or route.path.endswith("/search")
        assert declared_permission(route) is (Role.READER if reads else Role.WRITER), route.path
