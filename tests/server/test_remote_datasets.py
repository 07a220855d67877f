"""Datasets through the platform server: the HTTP API's answers to bad input and to
callers without the role a change needs (the conformance checks of `loopline.testing`
through the server are in test_remote_conformance.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server._remote_stores import TRAVERSAL, as_role


def _version_body(**changes: Any) -> dict[str, Any]:
    return {"manifest_hash": "ab" * 32, "file_count": 1, "total_size": 8, **changes}


def test_a_version_is_recorded_under_the_authenticated_user(roles_api: Any) -> None:
    client, opened = roles_api
    answer = client.post(
        "/api/v1/datasets/credit/versions",
        json=_version_body(author="mallory"),
        headers=as_role("writer", "alice"),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["created"] is True
    assert answer.json()["version"]["author"] == "alice"
    assert opened.metadata.datasets.latest_version("credit").author == "alice"
    again = client.post(
        "/api/v1/datasets/credit/versions", json=_version_body(), headers=as_role("writer")
    )
    assert again.status_code == 200 and again.json()["created"] is False


def test_a_reader_cannot_write_and_a_stranger_cannot_read(roles_api: Any) -> None:
    client, opened = roles_api
    refused = client.post(
        "/api/v1/datasets/readers/versions", json=_version_body(), headers=as_role("reader")
    )
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    assert client.get("/api/v1/datasets").status_code == 401
    assert client.get("/api/v1/datasets", headers=as_role("reader")).status_code == 200
    assert "readers" not in {d.name for d in opened.metadata.datasets.list_datasets()}


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/api/v1/datasets/nope/versions", 404, "NotFound"),
        ("/api/v1/datasets/nope/versions/latest", 404, "NotFound"),
        ("/api/v1/datasets/credit/versions/99", 404, "NotFound"),
        ("/api/v1/datasets/credit/versions/two", 400, "MalformedRequest"),
        ("/api/v1/datasets/credit/versions/by-hash?prefix=ab%25", 422, "InvalidInput"),
        ("/api/v1/datasets/credit/versions/by-hash", 400, "MalformedRequest"),
        ("/api/v1/dataset-versions/" + "0" * 32, 404, "NotFound"),
        ("/api/v1/dataset-versions/" + "0" * 32 + "/validations", 200, None),
        ("/api/v1/dataset-versions", 400, "MalformedRequest"),
    ],
)
def test_unknown_and_malformed_reads(
    roles_api: Any, path: str, status: int, kind: str | None
) -> None:
    client, _ = roles_api
    client.post("/api/v1/datasets/credit/versions", json=_version_body(), headers=as_role("admin"))
    answer = client.get(path, headers=as_role("reader"))
    assert answer.status_code == status, answer.text
    if kind is not None:
        assert answer.json()["error"]["type"] == kind


@pytest.mark.parametrize(
    "body",
    [
        _version_body(file_count="1"),  # a number as a string
        _version_body(file_count=1.5),
        _version_body(total_size=None),
        _version_body(surprise=1),  # an unknown field
        {"manifest_hash": "ab" * 32},  # fields missing
        [],
        "text",
    ],
)
def test_malformed_version_bodies_are_400(roles_api: Any, body: Any) -> None:
    client, opened = roles_api
    answer = client.post("/api/v1/datasets/bodies/versions", json=body, headers=as_role("writer"))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "MalformedRequest"
    assert "bodies" not in {d.name for d in opened.metadata.datasets.list_datasets()}


def test_a_body_that_is_not_json_or_holds_nan_is_400(roles_api: Any) -> None:
    client, _ = roles_api
    for raw in (b"{not json", b'{"manifest_hash": "ab", "file_count": NaN, "total_size": 1}'):
        answer = client.post(
            "/api/v1/datasets/raw/versions",
            content=raw,
            headers={**as_role("writer"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 400, answer.text


@pytest.mark.parametrize("name", TRAVERSAL)
def test_traversal_spellings_of_a_dataset_name_are_refused(roles_api: Any, name: str) -> None:
    client, opened = roles_api
    before = opened.metadata.datasets.list_datasets()
    for answer in (
        client.post(
            f"/api/v1/datasets/{name}/versions", json=_version_body(), headers=as_role("admin")
        ),
        client.get(f"/api/v1/datasets/{name}/versions", headers=as_role("admin")),
        client.get(f"/api/v1/dataset-versions/{name}/validations", headers=as_role("admin")),
    ):
        assert 400 <= answer.status_code < 500, (name, answer.status_code)
        assert "error" in answer.json()
    assert opened.metadata.datasets.list_datasets() == before


def test_validations_need_a_known_version_and_a_writer(roles_api: Any) -> None:
    client, opened = roles_api
    version, _ = opened.metadata.datasets.add_version(
        "checked", manifest_hash="cd" * 32, author="t", file_count=1, total_size=1
    )
    body = {
        "suite_name": "s",
        "suite_hash": "e" * 64,
        "success": False,
        "failed": 2,
        "result_hash": "f" * 64,
    }
    path = f"/api/v1/dataset-versions/{version.id}/validations"
    assert client.post(path, json=body, headers=as_role("reader")).status_code == 403
    unknown = client.post(
        "/api/v1/dataset-versions/" + "1" * 32 + "/validations",
        json=body,
        headers=as_role("writer"),
    )
    assert unknown.status_code == 404
    assert (
        client.post(path, json={**body, "success": "no"}, headers=as_role("writer")).status_code
        == 400
    )
    added = client.post(path, json=body, headers=as_role("writer"))
    assert added.status_code == 201 and added.json()["failed"] == 2
    assert [v.failed for v in opened.metadata.datasets.list_validations(version.id)] == [2]


def test_the_routes_and_their_bodies_are_in_the_openapi_schema(roles_api: Any) -> None:
    client, _ = roles_api
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/datasets/{name}/versions",
        "/api/v1/dataset-versions/{version_id}/validations",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/model-versions/{version_id}/approvals",
    ):
        assert path in paths, path
    bodies = schema["components"]["schemas"]
    assert "schema_json" in bodies["NewDatasetVersion"]["properties"]
    assert "signature" in bodies["NewModelVersion"]["properties"]
