"""Resumable uploads of large blobs (`PUT /blobs/{digest}` with `Content-Range`, `GET
/blobs/{digest}/upload`) against a real server on a real port, behind a proxy that drops
a connection: a dropped upload sends only the rest, two uploads of one blob never mix,
abandoned partials go, and hostile ranges and digests get a 4xx JSON answer."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.blob_files import MB, b3
from fixtures.blob_server import (  # noqa: F401 (fixtures)
    BlobServer,
    blob_server,
    module_server,
    module_server_store,
)
from fixtures.waiting import eventually
from loopline.server.api import blobs as blob_routes
from loopline.store.artifacts import ArtifactStore

SIZE = 40 * MB  # over RESUMABLE_MIN: sent resumably

# module-scoped servers: one test process runs the module
pytestmark = pytest.mark.xdist_group("test_blob_uploads")


def _partials(server: BlobServer) -> list[Path]:
    return sorted((server.store_root / "tmp" / "uploads").glob("*.part"))


def _put(server: BlobServer, digest: str, header: str | None, body: Any) -> httpx.Response:
    headers = {} if header is None else {"Content-Range": header}
    return httpx.put(
        f"{server.url}/api/v1/blobs/{digest}", content=body, headers=headers, timeout=60
    )


def _state(server: BlobServer, digest: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/api/v1/blobs/{digest}/upload", timeout=30)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def _put_bodies(server: BlobServer, start: int) -> list[int]:
    """The body bytes of each PUT the server received since request number `start`."""
    return [size for method, _, size, _ in server.traffic.since(start) if method == "PUT"]


def test_a_dropped_upload_sends_only_what_the_server_did_not_keep(
    server_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(SIZE)
    (tmp_path / "model.bin").write_bytes(data)
    server.proxy.cut_once("up", SIZE // 2)
    cuts, start = server.proxy.cuts, len(server.traffic.requests)

    blob = server_store.put_file(tmp_path / "model.bin")

    assert server.proxy.cuts == cuts + 1
    assert server.artifacts.get_bytes(blob.hash) == data
    first, rest = _put_bodies(server, start)
    assert first + rest == SIZE  # the second PUT carried exactly what the first lacked
    assert rest < SIZE * 0.6  # a whole re-send would have been SIZE
    assert _partials(server) == []
    # the partial became the blob itself, with the mode the store gives its own files
    local = server.artifacts.put_bytes(b"stored by the server's own store")
    assert server.blob_path(blob.hash).stat().st_mode == server.blob_path(local.hash).stat().st_mode


def test_an_upload_left_by_a_client_that_died_is_resumed_by_the_next(
    server_store: ArtifactStore, server: BlobServer
) -> None:
    data = os.urandom(SIZE)
    digest, half = b3(data), SIZE // 2
    answer = _put(server, digest, f"bytes 0-{half - 1}/{SIZE}", data[:half])
    assert answer.status_code == 202 and answer.json()["offset"] == half
    assert _state(server, digest) == {
        "hash": digest,
        "offset": half,
        "busy": False,
        "stored": False,
    }
    start = len(server.traffic.requests)

    assert server_store.put_bytes(data).hash == digest

    assert _put_bodies(server, start) == [SIZE - half]
    assert server.artifacts.get_bytes(digest) == data
    assert _state(server, digest)["stored"] and _partials(server) == []


def test_bytes_held_under_a_digest_that_spoil_it_are_dropped_and_the_blob_sent_whole(
    server_store: ArtifactStore, server: BlobServer
) -> None:
    data = os.urandom(SIZE)
    digest, half = b3(data), SIZE // 2
    assert _put(server, digest, f"bytes 0-{half - 1}/{SIZE}", os.urandom(half)).status_code == 202
    start = len(server.traffic.requests)

    server_store.put_bytes(data)

    assert _put_bodies(server, start) == [SIZE - half, SIZE]  # refused at its end, then whole
    assert server.artifacts.get_bytes(digest) == data


def test_a_wrong_digest_at_the_end_stores_nothing_and_drops_the_partial(
    server: BlobServer,
) -> None:
    claimed, sent = os.urandom(3 * MB), os.urandom(3 * MB)
    digest = b3(claimed)
    assert _put(server, digest, f"bytes 0-{MB - 1}/{3 * MB}", sent[:MB]).status_code == 202
    answer = _put(server, digest, f"bytes {MB}-{3 * MB - 1}/{3 * MB}", sent[MB:])
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "InvalidInput"
    assert "nothing was stored" in answer.json()["error"]["message"]
    assert not server.artifacts.exists(digest) and not server.artifacts.exists(b3(sent))
    assert _state(server, digest)["offset"] == 0 and _partials(server) == []


def test_a_range_must_go_on_from_the_bytes_held(server: BlobServer) -> None:
    data = os.urandom(1000)
    digest = b3(data)
    beyond = _put(server, digest, "bytes 100-199/1000", data[100:200])
    assert beyond.status_code == 409 and beyond.json()["error"]["type"] == "Conflict"
    assert "holds 0 bytes" in beyond.json()["error"]["message"]
    assert _partials(server) == []  # refused before anything was kept

    assert _put(server, digest, "bytes 0-99/1000", data[:100]).status_code == 202
    overlapping = _put(server, digest, "bytes 50-149/1000", data[50:150])
    assert overlapping.status_code == 409
    ahead = _put(server, digest, "bytes 200-299/1000", data[200:300])
    assert ahead.status_code == 409
    early_finish = _put(server, digest, "bytes */1000", b"")
    assert early_finish.status_code == 409
    longer = _put(server, digest, "bytes 100-199/1000", data[100:250])
    assert longer.status_code == 400 and "longer than" in longer.json()["error"]["message"]
    assert _state(server, digest)["offset"] == 100  # none of the refused bytes were kept

    done = _put(server, digest, "bytes 100-999/1000", data[100:])
    assert done.status_code == 201 and done.json() == {"hash": digest, "size": 1000}
    assert server.artifacts.get_bytes(digest) == data


@pytest.mark.parametrize(
    "header",
    [
        "bytes 5-3/10",  # last before first
        "bytes 0-10/10",  # past the total
        "bytes 0-9/",  # no total
        "bytes=0-9/10",  # Range's spelling
        "items 0-9/10",
        "bytes -1-9/10",
        "bytes 0-9/99999999999999999999",  # 20 digits
        "bytes 0-9/1e3",
        "bytes 0-9/10, bytes 10-19/20",
    ],
)
def test_malformed_content_ranges_are_a_400_and_keep_nothing(
    server: BlobServer, header: str
) -> None:
    digest = b3(header.encode())
    answer = _put(server, digest, header, b"0123456789")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "MalformedRequest"
    assert _state(server, digest)["offset"] == 0 and _partials(server) == []


def test_a_total_larger_than_the_servers_disk_is_a_413(server: BlobServer) -> None:
    digest = b3(b"a huge blob")
    answer = _put(server, digest, "bytes 0-9/9000000000000000000", b"0123456789")
    assert answer.status_code == 413
    assert "bytes free" in answer.json()["error"]["message"]
    assert _state(server, digest)["offset"] == 0 and _partials(server) == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/blobs/..%2f..%2fetc%2fpasswd/upload",
        "/api/v1/blobs/../../etc/upload",
        "/api/v1/blobs/" + "A" * 64 + "/upload",
        "/api/v1/blobs/" + "a" * 63 + "/upload",
        "/api/v1/blobs/" + "a" * 64 + "%00/upload",
        "/api/v1/blobs/" + "a" * 64 + ".part/upload",
    ],
)
def test_traversal_and_malformed_digests_are_refused_and_touch_nothing(
    server: BlobServer, path: str
) -> None:
    before = sorted(server.store_root.rglob("*"))
    state = httpx.get(server.url + path, timeout=10)
    range_put = httpx.put(
        server.url + path.removesuffix("/upload"),
        content=b"x",
        headers={"Content-Range": "bytes 0-0/1"},
        timeout=10,
    )
    for answer in (state, range_put):
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert answer.json()["error"]["message"]
    assert sorted(server.store_root.rglob("*")) == before


def test_a_second_upload_of_the_same_blob_waits_for_the_first_and_sends_nothing(
    server_store: ArtifactStore, server: BlobServer
) -> None:
    data = os.urandom(SIZE)
    digest, half = b3(data), SIZE // 2
    go_on = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield data[:half]
        go_on.wait(30)
        yield data[half:]

    first: dict[str, Any] = {}
    sender = threading.Thread(
        target=lambda: first.update(
            answer=_put(server, digest, f"bytes 0-{SIZE - 1}/{SIZE}", slow_body())
        )
    )
    sender.start()
    try:
        eventually(lambda: _state(server, digest)["busy"], message="the first upload never held")
        refused = _put(server, digest, f"bytes 0-{SIZE - 1}/{SIZE}", b"")
        assert (
            refused.status_code == 409 and "another request" in refused.json()["error"]["message"]
        )

        start = len(server.traffic.requests)
        second = threading.Thread(target=server_store.put_bytes, args=(data,))
        second.start()
        eventually(
            lambda: any(r[1].endswith("/upload") for r in server.traffic.since(start)),
            message="the second client never asked how far the upload came",
        )
        go_on.set()
        second.join(60)
        assert not second.is_alive()
    finally:
        go_on.set()
        sender.join(60)
    assert first["answer"].status_code == 201
    assert _put_bodies(server, start) == []  # the second client waited, then found it stored
    assert server.artifacts.get_bytes(digest) == data


def test_concurrent_uploads_of_one_blob_store_it_once_intact(
    server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(SIZE)
    (tmp_path / "model.bin").write_bytes(data)
    stores = [ArtifactStore(server.url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:  # an error in one is raised here
            blobs = list(pool.map(lambda store: store.put_file(tmp_path / "model.bin"), stores))
    finally:
        for store in stores:
            store.close()
    assert [blob.hash for blob in blobs] == [b3(data)] * 3
    assert server.artifacts.get_bytes(b3(data)) == data
    assert _partials(server) == []


def test_a_request_that_stops_sending_lets_go_of_the_upload_and_keeps_its_bytes(
    server_store: ArtifactStore, server: BlobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_routes, "UPLOAD_IDLE", 0.5)
    data = os.urandom(SIZE)
    digest = b3(data)
    stop = threading.Event()

    def stalling_body() -> Iterator[bytes]:
        yield data[: 4 * MB]
        stop.wait(30)  # a client that hangs without closing its connection

    header = f"bytes 0-{SIZE - 1}/{SIZE}"
    sender = threading.Thread(
        target=_ignoring_errors, args=(_put, server, digest, header, stalling_body())
    )
    sender.start()
    try:
        held = eventually(
            lambda: _state(server, digest),
            until=lambda state: not state["busy"] and state["offset"] > 0,
            message="the stalled request kept the upload",
        )
        assert 0 < held["offset"] <= 4 * MB
        server_store.put_bytes(data)
    finally:
        stop.set()
        sender.join(30)
    assert server.artifacts.get_bytes(digest) == data


def _ignoring_errors(function: Any, *args: Any) -> None:
    """Call `function` in a thread whose request the server cuts: its error is expected."""
    with contextlib.suppress(httpx.HTTPError):
        function(*args)


def test_abandoned_partials_go_when_an_upload_starts_and_with_clean_temp(
    server: BlobServer,
) -> None:
    old, older, fresh = (os.urandom(2 * MB) for _ in range(3))
    for data in (old, older):
        assert _put(server, b3(data), f"bytes 0-{MB - 1}/{2 * MB}", data[:MB]).status_code == 202
    two_hours_ago = time.time() - 7200
    os.utime(_part_of(server, b3(old)), (two_hours_ago, two_hours_ago))

    assert _put(server, b3(fresh), f"bytes 0-{MB - 1}/{2 * MB}", fresh[:MB]).status_code == 202
    assert _state(server, b3(old))["offset"] == 0  # removed as the new upload started
    assert _state(server, b3(older))["offset"] == MB  # an hour has not passed: kept

    os.utime(_part_of(server, b3(older)), (two_hours_ago, two_hours_ago))
    assert server.artifacts.clean_temp() >= 1  # what `loopline fsck --repair` runs
    assert _state(server, b3(older))["offset"] == 0
    assert (
        _put(server, b3(fresh), f"bytes {MB}-{2 * MB - 1}/{2 * MB}", fresh[MB:]).status_code == 201
    )
    assert _partials(server) == []


def _part_of(server: BlobServer, digest: str) -> Path:
    return server.store_root / "tmp" / "uploads" / f"{digest}.part"


def test_a_dropped_upload_resumes_into_an_s3_store_behind_the_server(
    tmp_path: Path, s3_uri: Any
) -> None:
    bucket_store = ArtifactStore(s3_uri.uri, s3_endpoint_url=s3_uri.endpoint_url)
    data = os.urandom(SIZE)
    (tmp_path / "model.bin").write_bytes(data)
    with blob_server(tmp_path / "project", artifacts=bucket_store) as running:
        store = ArtifactStore(running.url)
        try:
            running.proxy.cut_once("up", SIZE // 3)
            start = len(running.traffic.requests)
            blob = store.put_file(tmp_path / "model.bin")
        finally:
            store.close()
        assert running.proxy.cuts == 1
        assert sum(_put_bodies(running, start)) == SIZE
        staged = tmp_path / "project" / ".loopline" / "tmp" / "uploads"
        assert staged.is_dir() and list(staged.iterdir()) == []
    assert bucket_store.get_bytes(blob.hash) == data
