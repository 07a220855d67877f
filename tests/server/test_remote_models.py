"""The model registry and reviews through the platform server: the HTTP API's answers to
bad input and to callers without the role a change needs, and the remote store's own
refusals (the conformance checks through the server: test_remote_conformance.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server._remote_stores import TRAVERSAL, as_role


def _version_body(**changes: Any) -> dict[str, Any]:
    return {
        "flavor": "sklearn",
        "package_hash": "ab" * 32,
        "size_bytes": 10,
        "signature": {"inputs": [{"name": "x", "type": "double"}]},
        "manifest": {"flavor": "sklearn"},
        **changes,
    }


def _register(client: Any, name: str) -> dict[str, Any]:
    answer = client.post(
        f"/api/v1/models/{name}/versions", json=_version_body(), headers=as_role("writer", "bob")
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_each_change_needs_its_role_and_is_recorded_under_the_caller(roles_api: Any) -> None:
    client, opened = roles_api
    refused = client.post(
        "/api/v1/models/roles/versions", json=_version_body(), headers=as_role("reader")
    )
    assert refused.status_code == 403
    version = client.post(
        "/api/v1/models/roles/versions",
        json=_version_body(created_by="mallory"),
        headers=as_role("writer", "bob"),
    ).json()
    assert version["created_by"] == "bob" and version["status"] == "candidate"

    alias = "/api/v1/models/roles/aliases/champion"
    assert client.put(alias, json={"version": 1}, headers=as_role("writer")).status_code == 403
    moved = client.put(alias, json={"version": 1, "actor": "mallory"}, headers=as_role("deployer"))
    assert moved.status_code == 200 and moved.json() == {"before": None}
    status = "/api/v1/models/roles/versions/1/status"
    assert (
        client.put(status, json={"status": "staging"}, headers=as_role("writer")).status_code == 403
    )
    staged = client.put(status, json={"status": "staging"}, headers=as_role("deployer", "dee"))
    assert staged.json()["before"] == "candidate"
    assert staged.json()["version"]["status"] == "staging"

    approvals = f"/api/v1/model-versions/{version['id']}/approvals"
    approval = {"ref": "roles/1", "stage": "production", "reason": "ok", "actor": "mallory"}
    assert client.post(approvals, json=approval, headers=as_role("deployer")).status_code == 403
    approved = client.post(approvals, json=approval, headers=as_role("approver", "ann"))
    assert approved.status_code == 201 and approved.json()["actor"] == "ann"
    events = opened.metadata.audit.list_events(object_prefix="roles")
    assert "mallory" not in {event.actor for event in events}
    assert {"bob", "alice", "dee", "ann"} >= {event.actor for event in events}


def test_an_approval_names_the_version_the_path_names(roles_api: Any) -> None:
    client, opened = roles_api
    version = _register(client, "approved")
    answer = client.post(
        f"/api/v1/model-versions/{version['id']}/approvals",
        json={"ref": "other/1", "stage": "production", "reason": "ok"},
        headers=as_role("approver"),
    )
    assert answer.status_code == 422 and answer.json()["error"]["type"] == "InvalidInput"
    assert opened.metadata.reviews.list_approvals(version["id"]) == []


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/api/v1/models/nope", 404, "NotFound"),
        ("GET", "/api/v1/models/nope/versions", 404, "NotFound"),
        ("GET", "/api/v1/models/known/versions/9", 404, "NotFound"),
        ("GET", "/api/v1/models/known/versions/nine", 400, "MalformedRequest"),
        ("GET", "/api/v1/models/known/aliases/champion", 404, "NotFound"),
        ("GET", "/api/v1/models/known/aliases/latest", 400, "MalformedRequest"),
        ("GET", "/api/v1/model-versions/" + "0" * 32, 404, "NotFound"),
        ("GET", "/api/v1/model-versions", 400, "MalformedRequest"),
        ("DELETE", "/api/v1/models/known/aliases/champion", 404, "NotFound"),
        ("PUT", "/api/v1/model-versions/" + "0" * 32 + "/card", 404, "NotFound"),
        ("POST", "/api/v1/model-versions/" + "0" * 32 + "/evaluations", 404, "NotFound"),
    ],
)
def test_unknown_and_malformed_requests(
    roles_api: Any, method: str, path: str, status: int, kind: str
) -> None:
    client, _ = roles_api
    if client.get("/api/v1/models/known", headers=as_role("reader")).status_code == 404:
        _register(client, "known")
    body: Any = None
    if path.endswith("/card"):
        body = {"card_hash": "c" * 64}
    elif path.endswith("/evaluations"):
        body = {
            "data_ref": "d@1",
            "target": "y",
            "config_hash": "c",
            "report_hash": "r",
            "html_hash": "h",
            "metrics": {"auc": 0.9},
        }
    answer = client.request(method, path, json=body, headers=as_role("admin"))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["type"] == kind


@pytest.mark.parametrize(
    "body",
    [
        _version_body(size_bytes="10"),
        _version_body(signature=["not", "an", "object"]),
        _version_body(tags={"team": 7}),
        _version_body(surprise=True),
        {"flavor": "sklearn"},
    ],
)
def test_malformed_version_bodies_are_400_and_register_nothing(roles_api: Any, body: Any) -> None:
    client, opened = roles_api
    answer = client.post("/api/v1/models/malformed/versions", json=body, headers=as_role("writer"))
    assert answer.status_code == 400, answer.text
    assert "malformed" not in {m.name for m in opened.metadata.models.list_models()}


def test_nan_anywhere_in_a_body_is_400(roles_api: Any) -> None:
    client, opened = roles_api
    version = _register(client, "nans")
    raw = {
        "/api/v1/models/nans/versions": b'{"flavor": "s", "package_hash": "ab", "size_bytes": 1,'
        b' "signature": {"x": [1, NaN]}, "manifest": {}}',
        f"/api/v1/model-versions/{version['id']}/evaluations": b'{"data_ref": "d", "target": "y",'
        b' "config_hash": "c", "report_hash": "r", "html_hash": "h", "metrics": {"auc": Infinity}}',
    }
    for path, content in raw.items():
        answer = client.post(
            path, content=content, headers={**as_role("writer"), "Content-Type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        assert "NaN or infinite" in answer.json()["error"]["message"]
    assert [v.version for v in opened.metadata.models.list_versions("nans")] == [1]
    assert opened.metadata.reviews.list_evaluations(version["id"]) == []


def test_a_status_that_does_not_exist_or_cannot_be_reached_is_refused(roles_api: Any) -> None:
    client, _ = roles_api
    _register(client, "moves")
    path = "/api/v1/models/moves/versions/1/status"
    unknown = client.put(path, json={"status": "gold"}, headers=as_role("deployer"))
    assert unknown.status_code == 422
    client.put(path, json={"status": "archived"}, headers=as_role("deployer"))
    final = client.put(path, json={"status": "production"}, headers=as_role("deployer"))
    assert final.status_code == 409 and final.json()["error"]["type"] == "Conflict"
    alias = client.put(
        "/api/v1/models/moves/aliases/champion", json={"version": 1}, headers=as_role("deployer")
    )
    assert alias.status_code == 409


@pytest.mark.parametrize("name", TRAVERSAL)
def test_traversal_spellings_of_names_are_refused(roles_api: Any, name: str) -> None:
    client, opened = roles_api
    before = opened.metadata.models.list_models()
    for method, path in (
        ("POST", f"/api/v1/models/{name}/versions"),
        ("GET", f"/api/v1/models/{name}"),
        ("PUT", f"/api/v1/models/known/aliases/{name}"),
        ("GET", f"/api/v1/model-versions/{name}/approvals"),
    ):
        body = _version_body() if method == "POST" else {"version": 1}
        answer = client.request(method, path, json=body, headers=as_role("admin"))
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert "error" in answer.json()
    assert opened.metadata.models.list_models() == before


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_the_remote_store_refuses_a_transaction(remote_store: Any) -> None:
    from loopline.errors import LooplineError

    with pytest.raises(LooplineError, match="over HTTP"):
        remote_store.models.change("churn", "move alias")


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_ids_that_look_like_steps_up_stay_on_their_route(remote_store: Any) -> None:
    from loopline.errors import MalformedRequest

    for bad in ("..", "."):  # unescaped, a client would send /model-versions/../x as /x
        for call in (
            remote_store.models.get_version_by_id,
            remote_store.models.aliases_of,
            remote_store.reviews.list_approvals,
            remote_store.datasets.list_validations,
        ):
            with pytest.raises(MalformedRequest, match=r"invalid|refused"):
                call(bad)
