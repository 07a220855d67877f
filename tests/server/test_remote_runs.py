"""The runs store through the platform server: bad input to the HTTP routes (404, 400,
422 naming the row, traversal-looking names), who may write, and what a project on a
server refuses to do locally (the conformance checks: test_remote_conformance.py)."""

from __future__ import annotations

from typing import Any

import pytest

# -- the HTTP routes in-process: bad input and roles ------------------------------------

API = "/api/v1"
MISSING = "0123456789abcdef0123456789abcdef"


class HeaderRoles:
    """Callers by an X-Test-Role header (tokens are another part's work): the user is
    named after the role, so a test sees whom a change was recorded under."""

    def authenticate(self, request: Any) -> Any:
        from loopline.server._permissions import Caller, Role

        role = Role.parse(request.headers.get("X-Test-Role", "reader"))
        return Caller(f"{role.name.lower()}-user", role)


@pytest.fixture
def api(tmp_path: Any, store_uri: str) -> Any:
    """A TestClient over the app on a fresh store (SQLite: the routes' logic, not the
    back-end, is under test here), callers by header; yields (client, stores)."""
    import warnings

    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    init_project(tmp_path)
    opened = open_stores(project_settings(tmp_path, store_uri=store_uri))
    from starlette.exceptions import StarletteDeprecationWarning

    app = create_app(opened, authenticator=HeaderRoles())
    with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we have
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

        client = TestClient(app, base_url="http://t")
    client.headers["X-Test-Role"] = "writer"
    yield client, opened
    client.close()
    opened.close()


def _new_run(client: Any) -> str:
    experiment = client.post(f"{API}/experiments", json={"name": "exp"}).json()
    created = client.post(f"{API}/runs", json={"experiment_id": experiment["id"]})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["error"]
    assert detail["type"] == kind, detail
    return detail


def _batch(run_id: str, **columns: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runs": [run_id],
        "keys": ["loss"],
        "run": [0, 0, 0],
        "key": [0, 0, 0],
        "value": [0.5, "NaN", 1],
        "step": [0, 1, 2],
        "timestamp": [1000, 1001, 1002],
    }
    return {**body, **columns}


sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@sqlite_only
def test_a_metric_batch_is_stored_whole_with_nan_and_integers(api: Any) -> None:
    client, opened = api
    run_id = _new_run(client)
    assert client.post(f"{API}/metrics", json=_batch(run_id)).status_code == 204
    history = opened.metadata.runs.get_metric_history(run_id, "loss")
    assert [p.step for p in history] == [0, 1, 2] and history[2].value == 1.0
    assert history[1].value != history[1].value  # NaN
    answer = client.get(f"{API}/runs/{run_id}/metrics/history", params={"key": "loss"}).json()
    assert answer == {
        "key": "loss",
        "value": [0.5, "NaN", 1.0],
        "step": [0, 1, 2],
        "timestamp": [1000, 1001, 1002],
        "total": 3,
        "finite": 2,
        "thinned": False,
    }


@sqlite_only
@pytest.mark.parametrize(
    ("columns", "row", "field"),
    [
        ({"value": [0.5, "abc", 1.0]}, 1, "value"),
        ({"value": [0.5, 1.0, True]}, 2, "value"),
        ({"value": [0.5, None, 1.0]}, 1, "value"),
        ({"value": [0.5, 1.0, 10**400]}, 2, "value"),
        ({"step": [0, 1.5, 2]}, 1, "step"),
        ({"step": [0, 1, 2**63]}, 2, "step"),
        ({"timestamp": [1000, "now", 1002]}, 1, "timestamp"),
        ({"run": [0, 1, 0]}, 1, "run"),
        ({"key": [0, 0, -1]}, 2, "key"),
    ],
)
def test_a_bad_point_refuses_the_batch_naming_its_row(
    api: Any, columns: dict[str, list[Any]], row: int, field: str
) -> None:
    client, opened = api
    run_id = _new_run(client)
    detail = _error(
        client.post(f"{API}/metrics", json=_batch(run_id, **columns)), 422, "InvalidField"
    )
    assert (detail["row"], detail["field"]) == (row, field)
    assert f"point {row}" in detail["message"]
    assert opened.metadata.runs.get_metric_history(run_id, "loss") == []  # nothing stored


@sqlite_only
def test_malformed_metric_batches_are_400_and_bad_names_422(api: Any) -> None:
    client, opened = api
    run_id = _new_run(client)
    post = lambda body: client.post(f"{API}/metrics", json=body)  # noqa: E731
    _error(client.post(f"{API}/metrics", content=b"{not json"), 400, "MalformedRequest")
    _error(post([1, 2]), 400, "MalformedRequest")
    _error(post(_batch(run_id, step=[0, 1])), 400, "MalformedRequest")  # lengths differ
    _error(post({**_batch(run_id), "extra": []}), 400, "MalformedRequest")
    _error(post({k: v for k, v in _batch(run_id).items() if k != "keys"}), 400, "MalformedRequest")
    _error(post(_batch(run_id, runs=["../../etc/passwd"])), 422, "InvalidInput")
    _error(post(_batch(run_id, keys=["../loss"])), 422, "InvalidInput")
    _error(post(_batch(run_id, keys=["a\x00b"])), 422, "InvalidInput")
    detail = _error(post(_batch(MISSING)), 404, "NotFound")
    assert MISSING in detail["message"]
    assert opened.metadata.runs.list_metric_keys(run_id) == []


@sqlite_only
def test_unknown_ids_are_404_and_malformed_ids_422(api: Any) -> None:
    client, _ = api
    _error(client.get(f"{API}/runs/{MISSING}"), 404, "NotFound")
    _error(client.get(f"{API}/runs/{MISSING}/links"), 404, "NotFound")
    _error(client.get(f"{API}/runs/{MISSING}/metrics/history?key=x"), 404, "NotFound")
    _error(
        client.post(f"{API}/runs/{MISSING}/params", json={"params": {"a": "1"}}), 404, "NotFound"
    )
    _error(client.patch(f"{API}/runs/{MISSING}", json={"status": "FAILED"}), 404, "NotFound")
    _error(client.get(f"{API}/runs/not-an-id"), 422, "InvalidInput")
    _error(client.get(f"{API}/runs/resolve/zzzz"), 422, "InvalidInput")
    _error(client.get(f"{API}/runs/resolve/abcd"), 404, "NotFound")
    _error(client.get(f"{API}/experiments/nope"), 404, "NotFound")
    _error(client.post(f"{API}/runs", json={"experiment_id": MISSING}), 404, "NotFound")


@sqlite_only
@pytest.mark.parametrize(
    "name", ["%2e%2e", "..%2F..%2Fetc%2Fpasswd", "a%00b", "%2Fetc%2Fpasswd", "..%5c..", "%c0%ae"]
)
def test_traversal_looking_experiment_names_are_4xx_json(api: Any, name: str) -> None:
    client, _ = api
    response = client.get(f"{API}/experiments/{name}")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["type"] in {"NotFound", "MalformedRequest", "InvalidInput"}


@sqlite_only
def test_malformed_run_bodies_are_400_and_bad_values_422(api: Any) -> None:
    client, opened = api
    run_id = _new_run(client)
    experiment_id = opened.metadata.runs.get_experiment("exp").id
    _error(client.post(f"{API}/runs", content=b"[}"), 400, "MalformedRequest")
    _error(client.post(f"{API}/runs", json={}), 400, "MalformedRequest")
    for wrong in ({"params": {"C": 1.0}}, {"name": 7}, {"artifacts": [["a", "h"]]}, {"x": 1}):
        body = {"experiment_id": experiment_id, **wrong}
        _error(client.post(f"{API}/runs", json=body), 400, "MalformedRequest")
    bad_key = {"experiment_id": experiment_id, "params": {"../up": "1"}}
    _error(client.post(f"{API}/runs", json=bad_key), 422, "InvalidInput")
    nul = {"experiment_id": experiment_id, "tags": {"t": "a\x00b"}}
    _error(client.post(f"{API}/runs", json=nul), 422, "InvalidInput")
    _error(client.post(f"{API}/experiments", json={"name": "a/b"}), 422, "InvalidInput")
    _error(client.post(f"{API}/experiments", json={"name": 5}), 400, "MalformedRequest")
    patch = lambda body: client.patch(f"{API}/runs/{run_id}", json=body)  # noqa: E731
    _error(patch({"status": "RUNNING"}), 422, "InvalidInput")
    _error(patch({"status": "bogus"}), 422, "InvalidInput")
    _error(patch({"status": "FAILED", "deleted": True}), 422, "InvalidInput")
    _error(patch({}), 422, "InvalidInput")
    _error(patch({"deleted": "yes"}), 400, "MalformedRequest")
    links = {"direction": "sideways", "kind": "artifact", "items": []}
    _error(client.post(f"{API}/runs/{run_id}/links", json=links), 400, "MalformedRequest")
    search = lambda body: client.post(f"{API}/runs/search", json=body)  # noqa: E731
    _error(search({"max_results": 0}), 422, "InvalidInput")
    _error(search({"condition": {"$type": "Drop", "items": []}}), 400, "MalformedRequest")
    _error(search({"order_by": "metrics.auc"}), 400, "MalformedRequest")
    lone = {"field": {"kind": "param", "key": "v"}, "op": "like", "value": "abc\\"}
    _error(search({"condition": {**lone, "$type": "Compare"}}), 422, "InvalidFilter")
    run = opened.metadata.runs.get_run(run_id)  # nothing of the above changed the run
    assert (run.status.value, run.params, run.tags, run.deleted) == ("RUNNING", {}, {}, False)


@sqlite_only
def test_a_reader_reads_but_cannot_write(api: Any) -> None:
    client, opened = api
    run_id = _new_run(client)
    reader = {"X-Test-Role": "reader"}
    assert client.get(f"{API}/runs/{run_id}", headers=reader).status_code == 200
    assert client.post(f"{API}/runs/search", json={}, headers=reader).status_code == 200
    assert client.get(f"{API}/experiments", headers=reader).status_code == 200
    writes = [
        ("POST", "/experiments", {"name": "new"}),
        ("POST", "/runs", {"experiment_id": MISSING}),
        ("PATCH", f"/runs/{run_id}", {"status": "FAILED"}),
        ("POST", f"/runs/{run_id}/params", {"params": {"a": "1"}}),
        ("POST", f"/runs/{run_id}/tags", {"tags": {"a": "1"}}),
        ("POST", f"/runs/{run_id}/links", {"direction": "input", "kind": "artifact", "items": []}),
        ("POST", "/metrics", _batch(run_id)),
    ]
    for method, path, body in writes:
        response = client.request(method, API + path, json=body, headers=reader)
        _error(response, 403, "Forbidden")
    _error(client.delete(f"{API}/runs/{run_id}/tags?key=a", headers=reader), 403, "Forbidden")
    run = opened.metadata.runs.get_run(run_id)
    assert (run.status.value, run.params, run.metrics) == ("RUNNING", {}, {})
    assert [e.name for e in opened.metadata.runs.list_experiments()] == ["exp"]


@sqlite_only
def test_a_run_is_recorded_under_the_authenticated_user(api: Any) -> None:
    client, opened = api
    experiment = client.post(f"{API}/experiments", json={"name": "exp"}).json()
    body = {"experiment_id": experiment["id"], "user": "mallory"}
    created = client.post(f"{API}/runs", json=body).json()
    assert created["user"] == "writer-user"
    assert opened.metadata.runs.get_run(created["id"]).user == "writer-user"


@sqlite_only
def test_runs_ls_lists_the_servers_runs_never_a_local_database(
    remote_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs ls` reads SQLite directly for speed; with a server, the project's local
    database file (left from before, say) is not where the runs are."""
    import json

    import loopline as ll
    from loopline.cli.app import run as cli
    from loopline.store.metadata import MetadataStore

    local = MetadataStore(remote_project.settings.store_uri)  # the client's own SQLite file
    stale = local.runs.create_run(local.runs.get_or_create_experiment("local").id).id
    local.close()
    with ll.start_run(experiment="served") as run:
        pass
    capsys.readouterr()
    assert cli(["runs", "ls", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run.id]
    assert cli(["runs", "ls", "--json", "-e", "served"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [run.id] and stale != run.id


def test_update_run_through_the_server_and_imports_refused_clearly(
    remote_store: Any, served_stores: Any
) -> None:
    """update_run (the MLflow API's update-run) works remotely; importing runs is not
    offered over HTTP and says so before anything is written."""
    from loopline.errors import InvalidInput, NotFound
    from loopline.store import RunStatus

    runs = remote_store.runs
    run_id = runs.create_run(runs.get_or_create_experiment("exp").id).id
    ended = runs.update_run(run_id, status="FINISHED", end_time_ms=4_102_444_800_000)
    assert ended.status is RunStatus.FINISHED and ended.end_time is not None
    assert ended.end_time.year == 2100
    resumed = runs.update_run(run_id, status="RUNNING", name="again")
    assert (resumed.status, resumed.end_time, resumed.name) == (RunStatus.RUNNING, None, "again")
    with pytest.raises(InvalidInput, match="epoch milliseconds"):
        runs.update_run(run_id, end_time_ms=1.5)
    with pytest.raises(InvalidInput):
        runs.update_run(run_id, name="bad\nname")
    with pytest.raises(NotFound):
        runs.update_run(MISSING, name="x")
    with pytest.raises(InvalidInput, match="not supported yet"):
        runs.imported_runs("mlflow.run_id", "mlflow.fingerprint")
    assert served_stores.metadata.runs.get_run(run_id).name == "again"


@sqlite_only
def test_gc_and_fsck_of_a_project_on_a_server_say_where_to_run_them(
    remote_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """gc and fsck read the database and the blob files in place: through a server they
    failed with `AttributeError: db`; now a one-line error names the server."""
    from loopline.cli.app import run as cli
    from loopline.errors import InvalidInput
    from loopline.maintenance import fsck, gc

    where = "this project's records and blobs are on the server at http://127.0.0.1:"
    for check in (gc, fsck):
        with pytest.raises(InvalidInput, match=where) as refused:
            check()
        assert f"loopline {check.__name__}" in (refused.value.hint or "")
    for command in ("gc", "fsck"):
        assert cli([command]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"Error: {where}") and "Traceback" not in err
