"""The prediction log index, feedback and monitoring records over HTTP: bad input is a
4xx JSON error and writes nothing, and each write needs the writer role."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loopline.server._permissions import Role
from server._ops_http import USERS, app_client, as_role, error_of

pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

HOUR = "2026-03-01T10:00:00+00:00"
FILE = {
    "hour": HOUR,
    "blob_hash": "a1" * 32,
    "rows": 3,
    "first_time": "2026-03-01T10:05:00+00:00",
    "last_time": "2026-03-01T10:06:00+00:00",
    "size_bytes": 100,
}
FILES = "/api/v1/deployments/churn/prediction-log/files"
FEEDBACK = "/api/v1/deployments/churn/feedback"
REPORT = {
    "deployment": "churn",
    "since": None,
    "until": HOUR,
    "rows": 10,
    "status": "passed",
    "failed": [],
    "reference": None,
    "report_hash": "b2" * 32,
    "html_hash": None,
    "scores": {"drift_share": 0.0},
}


@pytest.fixture
def client(platform_server: Any, served_stores: Any) -> Iterator[httpx.Client]:
    with app_client(platform_server, served_stores) as opened:
        yield opened


def _raw(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    import json

    content = json.dumps(body)  # NaN and Infinity as Python's json writes them
    headers = {"Content-Type": "application/json"}
    return client.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"blob_hash": "../../etc/passwd"}, 422),
        ({"blob_hash": "A1" * 32}, 422),
        ({"hour": "2026-03-01T10:30:00+00:00"}, 422),  # not on the hour
        ({"hour": "2026-03-01T10:00:00"}, 422),  # no UTC offset
        ({"hour": "yesterday"}, 400),
        ({"rows": "3"}, 400),
        ({"rows": -1}, 400),
        ({"rows": float("nan")}, 400),
        ({"size_bytes": 1.5}, 400),
        ({"request_filter": {"blocks": 1, "bits": "not base64!"}}, 422),
        ({"request_filter": {"blocks": 2, "bits": base64.b64encode(b"\0" * 64).decode()}}, 422),
        ({"request_filter": {"blocks": 0, "bits": ""}}, 422),
        ({"sketch": {"sketch_hash": "c3" * 32, "format": 0}}, 422),
        ({"sketch": "c3" * 32}, 400),
        ({"colour": "red"}, 400),
    ],
)
def test_malformed_log_files_are_refused(
    client: httpx.Client, served_stores: Any, change: dict[str, Any], status: int
) -> None:
    error_of(_raw(client, "POST", FILES, {**FILE, **change}), status)
    assert served_stores.metadata.predictions.files("churn") == []


def test_log_files_and_feedback_need_the_writer_role(
    client: httpx.Client, served_stores: Any
) -> None:
    error_of(client.post(FILES, json=FILE, headers=as_role(Role.READER)), 403)
    labels = {"items": [["r1", 0, "1"]]}
    error_of(client.post(FEEDBACK, json=labels, headers=as_role(Role.READER)), 403)
    assert client.post(FILES, json=FILE, headers=as_role(Role.WRITER)).json() == {"indexed": True}
    assert client.post(FILES, json=FILE).json() == {"indexed": False}  # delivered twice
    assert client.post(FEEDBACK, json=labels, headers=as_role(Role.WRITER)).json() == {"added": 1}
    reader = as_role(Role.READER)
    assert len(client.get(FILES, headers=reader).json()) == 1
    assert len(client.get(FEEDBACK, headers=reader).json()) == 1
    assert len(client.get(FEEDBACK + "/r1", headers=reader).json()) == 1
    blocks = client.get("/api/v1/prediction-log/request-blocks", params={"block_hash": 3})
    assert [item["block"] for item in blocks.json()] == [None]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"items": [["r1", "0", "1"]]}, 400),
        ({"items": [["r1", 0]]}, 400),
        ({"items": [["r1", 0, 1]]}, 400),
        ({"items": [["../x", 0, "1"]]}, 422),
        ({"items": [["r1", 0, "1"]], "time": "2026-01-01T00:00:00"}, 422),
        ({"items": "r1"}, 400),
        ({}, 400),
    ],
)
def test_malformed_feedback_is_refused(
    client: httpx.Client, served_stores: Any, body: Any, status: int
) -> None:
    error_of(_raw(client, "POST", FEEDBACK, body), status)
    assert served_stores.metadata.predictions.feedback("churn") == []


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (FILES, {"since": "2026-03-01T10:00:00"}, 422),
        (FILES, {"until": "never"}, 400),
        (FEEDBACK, {"since": "2026-03-01"}, 422),
        ("/api/v1/deployments/churn/prediction-log/sketches", {"since": "x"}, 400),
        ("/api/v1/deployments/..%2Fx/feedback", {}, 400),
        ("/api/v1/deployments/-x/feedback", {}, 422),
        ("/api/v1/deployments/-x/prediction-log/files", {}, 422),
        (FEEDBACK + "/r%201", {}, 422),
        (FEEDBACK + "/..%5Cx", {}, 400),
        ("/api/v1/prediction-log/request-blocks", {"block_hash": -1}, 400),
        ("/api/v1/prediction-log/request-blocks", {"block_hash": 2**31}, 400),
        ("/api/v1/prediction-log/request-blocks", {"block_hash": "NaN"}, 400),
        ("/api/v1/prediction-log/request-blocks", {}, 400),
        ("/api/v1/prediction-log/request-blocks", {"block_hash": 1, "deployment": "a b"}, 422),
    ],
)
def test_malformed_reads_are_4xx(
    client: httpx.Client, path: str, params: dict[str, Any], status: int
) -> None:
    error_of(client.get(path, params=params), status)


def test_monitoring_writes_need_the_writer_role_and_record_the_caller(
    client: httpx.Client, served_stores: Any
) -> None:
    reader, writer = as_role(Role.READER), as_role(Role.WRITER)
    monitoring = served_stores.metadata.monitoring
    body = {**REPORT, "created_by": "mallory"}
    error_of(client.post("/api/v1/monitoring/reports", json=body, headers=reader), 403)
    created = client.post("/api/v1/monitoring/reports", json=body, headers=writer)
    assert created.status_code == 201 and created.json()["created_by"] == USERS[Role.WRITER]
    report_id = created.json()["id"]
    got = client.get(f"/api/v1/monitoring/reports/{report_id}", headers=reader)
    assert got.json()["id"] == report_id

    alert = {"deployment": "churn", "check": "drift", "summary": "drifted"}
    error_of(client.post("/api/v1/monitoring/alerts", json=alert, headers=reader), 403)
    opened = client.post("/api/v1/monitoring/alerts", json=alert, headers=writer)
    assert opened.status_code == 201 and opened.json()["opened"] is True
    again = client.post("/api/v1/monitoring/alerts", json=alert, headers=writer)
    assert again.status_code == 200 and again.json()["opened"] is False
    alert_id = opened.json()["alert"]["id"]
    for method, path in (
        ("POST", f"/api/v1/monitoring/alerts/{alert_id}/deliveries"),
        ("POST", "/api/v1/monitoring/alerts/resolve?deployment=churn&check=drift"),
    ):
        error_of(client.request(method, path, headers=reader), 403)
    state = {"last_until": HOUR}
    error_of(client.put("/api/v1/monitoring/states/churn", json=state, headers=reader), 403)
    assert monitoring.open_alert_of("churn", "drift").sends == 0
    assert monitoring.state("churn").last_until is None


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": "maybe"}, 422),
        ({"deployment": "../x"}, 422),
        ({"scores": {"drift": float("nan")}}, 422),
        ({"scores": {"drift": float("-inf")}}, 422),
        ({"rows": "10"}, 400),
        ({"until": "2026-13-01T00:00:00+00:00"}, 400),
        ({"report_id": "../../x"}, 422),
        ({"failed": "drift"}, 400),
    ],
)
def test_malformed_reports_are_refused(
    client: httpx.Client, served_stores: Any, change: dict[str, Any], status: int
) -> None:
    error_of(_raw(client, "POST", "/api/v1/monitoring/reports", {**REPORT, **change}), status)
    assert served_stores.metadata.monitoring.list_reports() == []


def test_malformed_monitoring_requests_are_4xx(client: httpx.Client, served_stores: Any) -> None:
    monitoring = "/api/v1/monitoring"
    assert error_of(client.get(f"{monitoring}/reports/{'0' * 32}"), 404)["type"] == "NotFound"
    error_of(client.get(f"{monitoring}/reports/..%5Cx"), 400)
    error_of(client.get(f"{monitoring}/reports", params={"limit": -1}), 400)
    error_of(client.get(f"{monitoring}/reports", params={"deployment": "a b"}), 422)
    error_of(client.get(f"{monitoring}/alerts/open", params={"deployment": "churn"}), 400)
    bad_alert = {"deployment": "churn", "check": "", "summary": "s"}
    error_of(client.post(f"{monitoring}/alerts", json=bad_alert), 400)
    error_of(client.put(f"{monitoring}/alerts/x.y/pending", json={"summary": "s"}), 422)
    error_of(client.put(f"{monitoring}/alerts/abc/pending", json={}), 400)
    error_of(client.put(f"{monitoring}/states/churn", json={"last_until": "2026-03-01"}), 422)
    error_of(client.put(f"{monitoring}/states/-x", json={"last_until": HOUR}), 422)
    error_of(client.get(f"{monitoring}/states/-x"), 422)
    assert served_stores.metadata.monitoring.alerts() == []
