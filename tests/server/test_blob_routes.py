"""The blob routes in-process: bad input of every kind answers 4xx with a JSON error
body and touches nothing; Range, HEAD and ETag; who may read and who may write."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.blob_files import b3
from loopline.server._permissions import Caller, Role, Unauthorized

with warnings.catch_warnings():  # starlette asks for `httpx2`, which is not installed here
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

BLOBS = "/api/v1/blobs"


class BearerRoles:
    """An authenticator for these tests: the bearer token names the caller's role."""

    def authenticate(self, request: Any) -> Caller:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            return Caller(f"{token}-user", Role[token.upper()])
        except KeyError:
            raise Unauthorized("no valid token") from None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any, Path]]:
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    root = tmp_path_factory.mktemp("blob-routes")
    init_project(root / "proj")
    opened = open_stores(project_settings(root / "proj"))
    client = TestClient(create_app(opened, authenticator=BearerRoles()))
    client.headers["Authorization"] = "Bearer writer"
    try:
        yield client, opened, root
    finally:
        opened.close()


@pytest.fixture
def client(served: tuple[TestClient, Any, Path]) -> TestClient:
    return served[0]


@pytest.fixture
def stored(served: tuple[TestClient, Any, Path]) -> tuple[str, bytes]:
    data = os.urandom(1000)
    served[1].artifacts.put_bytes(data)
    return b3(data), data


TRAVERSALS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..%252f..%252fsecret.txt",
    "..%5c..%5csecret.txt",
    "..;/secret.txt",
    "%2F%2Fsecret.txt",
    "%2Ftmp%2Fsecret.txt",
    "file:%2F%2F%2Ftmp%2Fsecret.txt",
    "a" * 63 + "%00",
    "%c0%ae%c0%ae%c0%afsecret.txt",
    "A" * 64,
    "a" * 65,
    "g" * 64,
    "a" * 62 + "..",
]


@pytest.mark.parametrize("spelling", TRAVERSALS)
def test_traversal_spellings_in_the_digest_are_refused_and_touch_nothing(
    client: TestClient, served: tuple[TestClient, Any, Path], spelling: str
) -> None:
    root = served[2]
    secret = root / "secret.txt"
    secret.write_bytes(b"outside the store")
    before = sorted(p for p in root.rglob("*") if p.is_file())
    for method in ("GET", "PUT", "DELETE"):
        answer = client.request(method, f"{BLOBS}/{spelling}", content=b"x")
        assert 400 <= answer.status_code < 500, (method, answer.status_code)
        assert answer.json()["error"]["message"]
    assert 400 <= client.head(f"{BLOBS}/{spelling}").status_code < 500
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before
    assert secret.read_bytes() == b"outside the store"


def test_a_malformed_digest_that_reaches_the_route_is_a_400(client: TestClient) -> None:
    answer = client.get(f"{BLOBS}/{'A' * 64}")
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "MalformedRequest"
    assert "64 lowercase" in answer.json()["error"]["hint"]


def test_get_head_and_etag(client: TestClient, stored: tuple[str, bytes]) -> None:
    digest, data = stored
    answer = client.get(f"{BLOBS}/{digest}")
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["etag"] == f'"{digest}"'
    assert answer.headers["accept-ranges"] == "bytes"
    head = client.head(f"{BLOBS}/{digest}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1000" and head.headers["etag"] == f'"{digest}"'
    unknown = b3(b"nothing like it is stored")
    assert client.get(f"{BLOBS}/{unknown}").json()["error"]["type"] == "NotFound"
    assert client.head(f"{BLOBS}/{unknown}").status_code == 404


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=10-19", 206, slice(10, 20)),
        ("bytes=990-", 206, slice(990, 1000)),
        ("bytes=-5", 206, slice(995, 1000)),
        ("bytes=0-5000", 200, slice(0, 1000)),  # the whole blob: a plain 200
        ("bytes=0-1,5-6", 200, slice(0, 1000)),  # several ranges: ignored (RFC 9110)
        ("items=1-2", 200, slice(0, 1000)),
        ("bytes=abc", 200, slice(0, 1000)),
    ],
)
def test_range_requests(
    client: TestClient, stored: tuple[str, bytes], header: str, status: int, expected: slice
) -> None:
    digest, data = stored
    answer = client.get(f"{BLOBS}/{digest}", headers={"Range": header})
    assert answer.status_code == status
    assert answer.content == data[expected]
    assert answer.headers["content-length"] == str(len(data[expected]))
    if status == 206:
        start, stop = expected.start, expected.stop - 1
        assert answer.headers["content-range"] == f"bytes {start}-{stop}/1000"


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=20-10"])
def test_a_range_outside_the_blob_is_a_416(
    client: TestClient, stored: tuple[str, bytes], header: str
) -> None:
    answer = client.get(f"{BLOBS}/{stored[0]}", headers={"Range": header})
    assert answer.status_code == 416
    assert answer.json()["error"]["type"] == "RangeNotSatisfiable"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"digests": ["a" * 64] * 10_001}, 400),
        ({"digests": ["../../etc/passwd"]}, 400),
        ({"digests": "a" * 64}, 400),
        ({"digests": [1]}, 400),
        ({"digests": [], "more": 1}, 400),
        ({}, 400),
        ([], 400),
    ],
)
def test_bad_missing_and_fetch_bodies_are_refused(
    client: TestClient, body: Any, status: int
) -> None:
    for route in ("missing", "fetch"):
        answer = client.post(f"{BLOBS}/{route}", json=body)
        assert answer.status_code == status, (route, answer.text)
        assert answer.json()["error"]["type"] == "MalformedRequest"
    not_json = client.post(
        f"{BLOBS}/missing", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


def test_missing_and_fetch(client: TestClient, stored: tuple[str, bytes]) -> None:
    digest, data = stored
    absent = b3(b"absent")
    assert client.post(f"{BLOBS}/missing", json={"digests": [digest, absent]}).json() == {
        "missing": [absent]
    }
    fetched = client.post(f"{BLOBS}/fetch", json={"digests": [digest, digest]})
    frame = bytes.fromhex(digest) + (1000).to_bytes(8, "little") + data
    assert fetched.content == frame * 2
    unknown = client.post(f"{BLOBS}/fetch", json={"digests": [digest, absent]})
    assert unknown.status_code == 404 and absent in unknown.json()["error"]["message"]


def test_batch_limits(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.server.api import blobs

    data = os.urandom(300)
    frame = bytes.fromhex(b3(data)) + len(data).to_bytes(8, "little") + data
    monkeypatch.setattr(blobs, "FRAME_MAX", 100)
    assert client.post(f"{BLOBS}/batch", content=frame).status_code == 400
    monkeypatch.setattr(blobs, "BATCH_MAX", 200)
    answer = client.post(f"{BLOBS}/batch", content=frame)
    assert answer.status_code == 413 and answer.json()["error"]["type"] == "PayloadTooLarge"
    monkeypatch.undo()
    assert client.post(f"{BLOBS}/batch", content=frame).json() == {"blobs": 1, "bytes_stored": 300}
    assert client.get(f"{BLOBS}/{b3(data)}").content == data


def test_an_empty_blob_can_be_stored_and_read(client: TestClient) -> None:
    empty = b3(b"")
    assert client.put(f"{BLOBS}/{empty}", content=b"").status_code == 201
    answer = client.get(f"{BLOBS}/{empty}")
    assert answer.status_code == 200 and answer.content == b""


def test_readers_read_and_only_writers_write(client: TestClient, stored: tuple[str, bytes]) -> None:
    digest, _ = stored
    data = os.urandom(50)
    frame = bytes.fromhex(b3(data)) + len(data).to_bytes(8, "little") + data
    reader = {"Authorization": "Bearer reader"}
    assert client.get(f"{BLOBS}/{digest}", headers=reader).status_code == 200
    assert client.head(f"{BLOBS}/{digest}", headers=reader).status_code == 200
    for route in ("missing", "fetch"):
        body = {"digests": [digest]}
        assert client.post(f"{BLOBS}/{route}", json=body, headers=reader).status_code == 200
    refused = client.put(f"{BLOBS}/{b3(data)}", content=data, headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    assert client.post(f"{BLOBS}/batch", content=frame, headers=reader).status_code == 403
    nobody = {"Authorization": "Bearer nobody"}
    assert client.get(f"{BLOBS}/{digest}", headers=nobody).status_code == 401
    assert client.post(f"{BLOBS}/missing", json={"digests": []}, headers=nobody).status_code == 401
    assert client.put(f"{BLOBS}/{b3(data)}", content=data).status_code == 201  # a writer


def test_a_blob_upload_streams_past_the_body_limit_that_other_routes_keep(
    served: tuple[TestClient, Any, Path],
) -> None:
    from loopline.server import create_app
    from loopline.server._options import ServerOptions

    options = ServerOptions(max_body_mb=1, allowed_hosts=("testserver",))
    limited = TestClient(create_app(served[1], authenticator=BearerRoles(), options=options))
    limited.headers["Authorization"] = "Bearer writer"
    data = os.urandom(3 << 20)
    assert limited.put(f"{BLOBS}/{b3(data)}", content=data).status_code == 201
    assert limited.get(f"{BLOBS}/{b3(data)}").content == data
    frame = bytes.fromhex(b3(data)) + len(data).to_bytes(8, "little") + data
    assert limited.post(f"{BLOBS}/batch", content=frame).status_code == 413
    nested = f"{BLOBS}/{b3(data)}/x"
    assert limited.put(nested, content=data).status_code == 413  # only the exact path
