"""Deployments and heartbeats over HTTP: bad input is a 4xx JSON error and writes
nothing, each change needs its role, and a change is recorded under the authenticated
caller, never a user the client names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from loopline.server._permissions import Role
from server._ops_http import USERS, app_client, as_role, error_of

pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

CONFIG = {"model": {"model": "churn/1", "ref": "churn/1"}}
TRAVERSALS = ["..", "%2e%2e", "..%2fx", "%252e%252e", "a%5cb", "..;", "%00", "-lead", "a b"]


@pytest.fixture
def client(platform_server: Any, served_stores: Any) -> Iterator[httpx.Client]:
    with app_client(platform_server, served_stores) as opened:
        yield opened


def _create(client: httpx.Client, name: str = "scoring", headers: Any = None, **extra: Any) -> Any:
    body = {"name": name, "config": CONFIG, **extra}
    return client.post("/api/v1/deployments", json=body, headers=headers)


def test_changes_are_recorded_under_the_authenticated_caller(
    client: httpx.Client, served_stores: Any
) -> None:
    created = _create(client, actor="mallory", headers=as_role(Role.DEPLOYER))
    assert created.status_code == 201 and created.json()["created_by"] == USERS[Role.DEPLOYER]
    changed = client.patch(
        "/api/v1/deployments/scoring",
        json={"config": CONFIG, "action": "rollback", "actor": "mallory", "expected_revision": 1},
        headers=as_role(Role.DEPLOYER),
    )
    assert changed.status_code == 200 and changed.json()["revision"] == 2
    [event, _] = served_stores.metadata.audit.list_events(object_id="scoring")
    assert (event.action, event.actor) == ("deployment.rollback", USERS[Role.DEPLOYER])
    history = client.get("/api/v1/deployments/scoring/revisions", headers=as_role(Role.READER))
    assert [r["actor"] for r in history.json()] == [USERS[Role.DEPLOYER]] * 2


def test_each_change_needs_its_role(client: httpx.Client, served_stores: Any) -> None:
    assert error_of(_create(client, headers=as_role(Role.WRITER)), 403)["type"] == "Forbidden"
    assert error_of(_create(client, headers={"Authorization": "Bearer nope"}), 401)
    assert _create(client).status_code == 201
    change = {"config": CONFIG, "action": "update"}
    patch = client.patch("/api/v1/deployments/scoring", json=change, headers=as_role(Role.WRITER))
    error_of(patch, 403)
    for path in ("/deployments", "/deployments/scoring", "/deployments/scoring/revisions"):
        assert client.get("/api/v1" + path, headers=as_role(Role.READER)).status_code == 200
    beat = client.put(
        "/api/v1/servers/s1/heartbeats", json=_heartbeat("s1"), headers=as_role(Role.READER)
    )
    error_of(beat, 403)
    assert served_stores.metadata.deployments.get("scoring").revision == 1
    assert served_stores.metadata.servers.of_deployments() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "config": CONFIG, "colour": 1}, 400),  # unknown field
        ({"name": "x"}, 400),  # no config
        ({"name": 7, "config": CONFIG}, 400),  # wrong type
        ({"name": "x", "config": [1, 2]}, 400),
        ({"name": "x", "config": {"weight": float("nan")}}, 422),
        ({"name": "x", "config": {"weight": float("inf")}}, 422),
        ({"name": "a/b", "config": CONFIG}, 422),
        ({"name": "../etc", "config": CONFIG}, 422),
        ({"name": "", "config": CONFIG}, 422),
    ],
)
def test_malformed_creations_are_refused(
    client: httpx.Client, served_stores: Any, body: dict[str, Any], status: int
) -> None:
    import json

    raw = json.dumps(body)  # NaN and Infinity as Python's json writes them
    answer = client.post(
        "/api/v1/deployments", content=raw, headers={"Content-Type": "application/json"}
    )
    error_of(answer, status)
    assert served_stores.metadata.deployments.all() == []


def test_malformed_bodies_and_changes(client: httpx.Client, served_stores: Any) -> None:
    headers = {"Content-Type": "application/json"}
    error_of(client.post("/api/v1/deployments", content=b"{not json", headers=headers), 400)
    error_of(client.post("/api/v1/deployments", content=b"", headers=headers), 400)
    assert _create(client).status_code == 201
    path = "/api/v1/deployments/scoring"
    error_of(client.patch(path, json={"config": CONFIG, "action": "DROP TABLE"}), 422)
    bad_revision = {"config": CONFIG, "action": "update", "expected_revision": "1"}
    error_of(client.patch(path, json=bad_revision), 400)
    stale = {"config": CONFIG, "action": "update", "expected_revision": 7}
    assert error_of(client.patch(path, json=stale), 409)["type"] == "Conflict"
    assert error_of(_create(client), 409)["type"] == "Conflict"
    error_of(client.get(path + "/revisions", params={"limit": 0}), 400)
    error_of(client.get(path + "/revisions", params={"limit": "many"}), 400)
    assert served_stores.metadata.deployments.get("scoring").revision == 1


def test_unknown_and_traversal_names_are_4xx(client: httpx.Client) -> None:
    assert error_of(client.get("/api/v1/deployments/nope"), 404)["type"] == "NotFound"
    error_of(client.get("/api/v1/deployments/nope/revisions"), 404)
    change = {"config": CONFIG, "action": "update"}
    error_of(client.patch("/api/v1/deployments/nope", json=change), 404)
    for bad in TRAVERSALS:
        for path in (f"/api/v1/deployments/{bad}", f"/api/v1/deployments/{bad}/revisions"):
            status = client.get(path).status_code
            assert 400 <= status < 500, (path, status)
            assert client.get(path).json()["error"]["type"]
    revisions = client.get("/api/v1/deployment-revisions", params={"name": ["ok", "../x"]})
    error_of(revisions, 422)
    error_of(client.get("/api/v1/deployment-revisions"), 400)


def _heartbeat(server_id: str, **server: Any) -> dict[str, Any]:
    identity = {
        "server_id": server_id,
        "host": "h",
        "address": "http://127.0.0.1:1",
        "pid": 1,
        "started_at": datetime.now(UTC).isoformat(),
        "interval_seconds": 2.0,
        **server,
    }
    return {"server": identity, "served": [{"deployment": "scoring", "state": "serving"}]}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("s2", _heartbeat("s1"), 422),  # the path and the body name other servers
        ("s1", _heartbeat("s1", interval_seconds="NaN"), 422),
        ("s1", _heartbeat("s1", interval_seconds=-1), 422),
        ("s1", _heartbeat("s1", pid="1"), 400),
        ("s1", _heartbeat("s1", started_at="2026-01-01T00:00:00"), 400),  # no UTC offset
        ("s1", {"server": {}, "served": []}, 400),
        ("s1", {"served": []}, 400),
        ("s1", {**_heartbeat("s1"), "served": [{"deployment": "../x", "state": "x"}]}, 422),
        ("..%2fx", _heartbeat("..%2fx"), 400),
        ("a.b", _heartbeat("a.b"), 422),
    ],
)
def test_malformed_heartbeats_are_refused(
    client: httpx.Client, served_stores: Any, path: str, body: Any, status: int
) -> None:
    error_of(client.put(f"/api/v1/servers/{path}/heartbeats", json=body), status)
    assert served_stores.metadata.servers.of_deployments() == []


def test_heartbeats_prune_and_remove(client: httpx.Client, served_stores: Any) -> None:
    assert client.put("/api/v1/servers/s1/heartbeats", json=_heartbeat("s1")).status_code == 200
    [beat] = client.get("/api/v1/servers/heartbeats", params={"deployment": "scoring"}).json()
    assert beat["server"]["server_id"] == "s1"
    assert client.get("/api/v1/servers/heartbeats", params={"deployment": "x"}).json() == []
    error_of(client.post("/api/v1/servers/prune", json={"older_than_seconds": "NaN"}), 400)
    error_of(client.post("/api/v1/servers/prune", json={"older_than_seconds": -1}), 400)
    error_of(client.post("/api/v1/servers/prune", json={"older_than_seconds": 1e300}), 422)
    error_of(client.delete("/api/v1/servers/a.b"), 422)
    assert client.post("/api/v1/servers/prune", json={"older_than_seconds": 60}).json() == {
        "pruned": 0
    }
    assert client.delete("/api/v1/servers/s1").status_code == 204
    assert served_stores.metadata.servers.of_deployments() == []
