"""The audit log over HTTP: listed newest first and filtered by user, object and action
(the web UI's audit view); an event the library records on its own is written under the
authenticated caller; a reader can't write; bad filters are 4xx JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loopline.server._permissions import Role
from server._ops_http import USERS, app_client, as_role, error_of

pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def client(platform_server: Any, served_stores: Any) -> Iterator[httpx.Client]:
    with app_client(platform_server, served_stores) as opened:
        yield opened


def _event(object_id: str, action: str = "model_version.promotion_refused", **extra: Any) -> Any:
    return {"action": action, "object_type": "model_version", "object_id": object_id, **extra}


def test_events_are_written_under_the_caller_and_filtered(
    client: httpx.Client, served_stores: Any
) -> None:
    writer, approver = as_role(Role.WRITER), as_role(Role.APPROVER)
    first = client.post(EVENTS, json=_event("churn/1", actor="mallory"), headers=writer)
    assert first.status_code == 201
    client.post(EVENTS, json=_event("churn/2", after={"to": "production"}), headers=approver)
    client.post(EVENTS, json=_event("churn@champion", "monitor.alert.sent"), headers=writer)
    client.post(EVENTS, json=_event("other/1"), headers=writer)
    reader = as_role(Role.READER)

    def found(**params: Any) -> list[tuple[str, str]]:
        answer = client.get(EVENTS, params=params, headers=reader)
        assert answer.status_code == 200, answer.text
        return [(e["object_id"], e["actor"]) for e in answer.json()]

    writer_user, approver_user = USERS[Role.WRITER], USERS[Role.APPROVER]
    assert found() == [
        ("other/1", writer_user),
        ("churn@champion", writer_user),
        ("churn/2", approver_user),
        ("churn/1", writer_user),  # never "mallory"
    ]
    assert found(actor=approver_user) == [("churn/2", approver_user)]
    assert found(actor="mallory") == []
    assert found(object_id="churn/1") == [("churn/1", writer_user)]
    assert [o for o, _ in found(object_prefix="churn")] == ["churn@champion", "churn/2", "churn/1"]
    assert found(action="monitor.alert.sent") == [("churn@champion", writer_user)]
    assert found(action="monitor.alert.sent", actor=approver_user) == []
    assert len(found(limit=2)) == 2
    assert found(since="2999-01-01T00:00:00+00:00") == []
    [stored] = served_stores.metadata.audit.list_events(object_id="churn/2")
    assert stored.after == {"to": "production"}


def test_a_reader_cannot_write_the_audit_log(client: httpx.Client, served_stores: Any) -> None:
    answer = client.post(EVENTS, json=_event("churn/1"), headers=as_role(Role.READER))
    assert error_of(answer, 403)["type"] == "Forbidden"
    error_of(client.post(EVENTS, json=_event("churn/1"), headers={"Authorization": "x"}), 401)
    error_of(client.get(EVENTS, headers={"Authorization": "Bearer nobody"}), 401)
    assert served_stores.metadata.audit.list_events() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (_event("churn/1", action="Drop Table"), 422),
        (_event("churn/1", action=""), 422),
        (_event(""), 400),
        (_event("churn/1", after={"x": float("nan")}), 422),
        (_event("churn/1", before=[1]), 400),
        (_event("churn/1", reason=7), 400),
        (_event("churn/1", time="2020-01-01T00:00:00+00:00"), 400),  # the server's time
        ({"action": "model.update"}, 400),
    ],
)
def test_malformed_events_are_refused(
    client: httpx.Client, served_stores: Any, body: dict[str, Any], status: int
) -> None:
    import json

    content = json.dumps(body)
    answer = client.post(EVENTS, content=content, headers={"Content-Type": "application/json"})
    error_of(answer, status)
    assert served_stores.metadata.audit.list_events() == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 10**9},
        {"limit": "all"},
        {"since": "yesterday"},
        {"since": "2026-03-01T00:00:00"},  # no UTC offset
        {"actor": "x" * 5000},
    ],
)
def test_bad_filters_are_4xx(client: httpx.Client, params: dict[str, Any]) -> None:
    answer = client.get(EVENTS, params=params)
    assert answer.status_code in (400, 422) and answer.json()["error"]["message"]
