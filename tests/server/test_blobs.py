"""Blobs over HTTP: `ArtifactStore("http://...")` against a real server on a real port
(module-scoped, local-folder store behind it, behind a proxy that can drop a
connection), and the routes' answers to bad input in-process."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.blob_files import MB, b3, small_files, write_files
from fixtures.blob_server import (  # noqa: F401 (fixtures)
    BlobServer,
    blob_server,
    module_server,
    module_server_store,
)
from fixtures.waiting import eventually

# The artifact store's own conformance tests, run here against the HTTP store (pytest
# collects them from this module, with this module's `artifact_store`).
from integration.test_artifacts import (  # noqa: F401
    test_bytes_round_trip,
    test_directory_destination_is_invalid_input,
    test_directory_source_is_invalid_input,
    test_file_round_trip_into_nested_destination,
    test_get_file_replaces_an_existing_destination,
    test_malformed_digest_is_invalid_input,
    test_missing_source_file_is_not_found,
    test_non_bytes_are_invalid_input,
    test_unknown_digest_is_not_found,
)
from integration.test_packs import (  # noqa: F401
    test_empty_file_round_trips,
    test_get_files_rejects_malformed_items,
    test_get_files_replaces_existing_files_and_creates_folders,
    test_missing_reports_blobs_stored_neither_loose_nor_packed,
    test_one_worker_round_trips,
    test_progress_reports_every_byte,
)
from loopline.errors import CorruptedData, InvalidInput, LooplineError, StoreUnavailable
from loopline.store.artifacts import ArtifactStore, Blob, StoredFile


def _store_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


# module-scoped servers: one test process runs the module
pytestmark = pytest.mark.xdist_group("test_blobs")


@pytest.fixture
def artifact_store(server_store: ArtifactStore) -> ArtifactStore:
    """The store the imported artifact store tests ask for: one on the server."""
    return server_store


def _sent(server: BlobServer, start: int) -> dict[str, int]:
    """Body bytes the server received since request number `start`, by kind of route."""
    totals: dict[str, int] = {}
    for method, path, size, _ in server.traffic.since(start):
        last = path.rpartition("/")[2]
        kind = f"{method} {last if last in ('missing', 'batch', 'fetch') else 'blob'}"
        totals[kind] = totals.get(kind, 0) + size
    return totals


def test_an_http_uri_opens_a_server_store() -> None:
    store = ArtifactStore("http://127.0.0.1:9/", token="llt_secret")
    assert type(store).__name__ == "HttpArtifactStore"
    assert store.uri == "http://127.0.0.1:9"
    with pytest.raises(InvalidInput, match="credentials"):
        ArtifactStore("http://user:pw@127.0.0.1:9")
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:9"):
        store.exists("a" * 64)  # nothing listens on the discard port


def test_small_and_large_files_round_trip_as_the_local_store_stores_them(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = small_files(300, seed=1)
    seeded = random.Random(20261207)
    contents["large.bin"] = seeded.randbytes(9 * MB + 17)  # chunked
    sources = write_files(tmp_path / "src", contents)

    stored = artifact_store.put_files(sources)

    local = ArtifactStore(str(tmp_path / "local")).put_files(sources)
    assert stored == local  # the same ids and chunks as a local store's
    assert len(stored[-1].chunks) >= 3
    assert all(server.artifacts.exists(blob.hash) for f in stored for blob in f.blobs)
    targets = [tmp_path / "out" / f"{n}.bin" for n in range(len(sources))]
    artifact_store.get_files(list(zip(stored, targets, strict=True)))
    assert [t.read_bytes() for t in targets] == list(contents.values())
    assert not list((tmp_path / "out").glob(".*.part"))


def test_a_push_of_unchanged_files_sends_digests_only(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = small_files(200, seed=2)
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path, contents)
    before = len(server.traffic.requests)
    first = artifact_store.put_files(sources)
    pushed = _sent(server, before)
    assert pushed["POST batch"] >= sum(map(len, contents.values()))

    again = len(server.traffic.requests)
    assert artifact_store.put_files(sources) == first
    assert set(_sent(server, again)) == {"POST missing"}  # no PUT, no batch
    single = len(server.traffic.requests)
    artifact_store.put_file(sources[-1])
    artifact_store.put_file(sources[-1])
    puts = [r for r in server.traffic.since(single) if r[0] == "PUT"]
    assert len(puts) == 1 and puts[0][2] == 6 * MB


def test_copy_to_pushes_to_and_pulls_from_a_server(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    local = ArtifactStore(str(tmp_path / "local"))
    contents = small_files(40, seed=3)
    contents["big.bin"] = os.urandom(5 * MB)
    stored = local.put_files(write_files(tmp_path / "src", contents))
    loose = local.put_bytes(os.urandom(17 * MB))  # over the batch frame limit: sent alone
    digests = {blob.hash for f in stored for blob in f.blobs} | {loose.hash}

    copied = local.copy_to(artifact_store, digests)
    assert copied == sum(b.size for f in stored for b in f.blobs) + loose.size
    assert artifact_store.missing(digests) == set()
    assert local.copy_to(artifact_store, digests) == 0

    pulled = ArtifactStore(str(tmp_path / "pulled"))
    assert artifact_store.copy_to(pulled, digests) == copied
    assert pulled.missing(digests) == set()
    assert pulled.get_bytes(loose.hash) == local.get_bytes(loose.hash)
    assert artifact_store.copy_to(pulled, digests) == 0


def test_an_upload_under_a_wrong_digest_is_refused_and_nothing_is_stored(
    server: BlobServer,
) -> None:
    claimed, sent = b"what the digest names", b"something else"
    files_before = _store_files(server.store_root)
    answer = httpx.put(f"{server.url}/api/v1/blobs/{b3(claimed)}", content=sent)
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "InvalidInput"

    frame = bytes.fromhex(b3(claimed)) + len(sent).to_bytes(8, "little") + sent
    batch = httpx.post(f"{server.url}/api/v1/blobs/batch", content=frame)
    assert batch.status_code == 422 and "hashes to" in batch.json()["error"]["message"]
    truncated = httpx.post(f"{server.url}/api/v1/blobs/batch", content=frame[:-3])
    assert truncated.status_code == 400

    assert not server.artifacts.exists(b3(claimed))
    assert not server.artifacts.exists(b3(sent))
    new = _store_files(server.store_root) - files_before
    assert not [path for path in new if "packs" in path.parts or "blobs" in path.parts]


def test_a_corrupted_blob_on_the_server_is_detected_by_the_client(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    blob = artifact_store.put_bytes(b"original content " + os.urandom(16))
    server.blob_path(blob.hash).write_bytes(b"tampered content " + os.urandom(16))
    with pytest.raises(CorruptedData, match=blob.hash):
        artifact_store.get_bytes(blob.hash)
    dest = tmp_path / "out" / "model.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"previous download")
    with pytest.raises(CorruptedData):
        artifact_store.get_file(blob.hash, dest)
    assert list(dest.parent.iterdir()) == [dest] and dest.read_bytes() == b"previous download"


def test_a_corrupted_packed_blob_fails_the_batch_and_writes_no_file(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = {"a.bin": os.urandom(3000), "b.bin": os.urandom(3000)}
    stored = artifact_store.put_files(write_files(tmp_path / "src", contents))
    for pack in (server.store_root / "packs").glob("*.pack"):
        data = bytearray(pack.read_bytes())
        at = data.find(contents["b.bin"])
        if at >= 0:
            data[at + 100] ^= 1
            pack.write_bytes(bytes(data))
    targets = [tmp_path / "out" / name for name in contents]
    with pytest.raises(CorruptedData, match=stored[1].hash):
        artifact_store.get_files(list(zip(stored, targets, strict=True)))
    assert not targets[1].exists()
    assert not list((tmp_path / "out").glob(".*.part"))


def test_a_large_corrupted_blob_is_cut_short_and_never_delivered(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(17 * MB)  # over the size the server verifies before it answers
    blob = artifact_store.put_bytes(data)
    server.blob_path(blob.hash).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(httpx.RemoteProtocolError):  # the last piece is never sent
        httpx.get(f"{server.url}/api/v1/blobs/{blob.hash}", timeout=30)
    with pytest.raises((CorruptedData, StoreUnavailable)):
        artifact_store.get_file(blob.hash, tmp_path / "model.bin")
    assert not list(tmp_path.iterdir())


def test_a_dropped_download_resumes_where_it_stopped(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(6 * MB)
    blob = artifact_store.put_bytes(data)
    server.proxy.cut_once("down", 2 * MB)
    cuts, start = server.proxy.cuts, len(server.traffic.requests)
    artifact_store.get_file(blob.hash, tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == data
    assert server.proxy.cuts == cuts + 1
    gets = [r for r in server.traffic.since(start) if r[0] == "GET"]
    assert len(gets) == 2  # the second asked for the rest with Range


def test_a_dropped_batch_download_resumes_from_the_first_blob_not_received(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = small_files(100, seed=4)
    stored = artifact_store.put_files(write_files(tmp_path / "src", contents))
    server.proxy.cut_once("down", sum(map(len, contents.values())) // 2)
    cuts = server.proxy.cuts
    targets = [tmp_path / "out" / f"{n}" for n in range(len(stored))]
    artifact_store.get_files(list(zip(stored, targets, strict=True)))
    assert server.proxy.cuts == cuts + 1
    assert [t.read_bytes() for t in targets] == list(contents.values())


def test_a_dropped_upload_is_sent_again(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(5 * MB)
    (tmp_path / "model.bin").write_bytes(data)
    server.proxy.cut_once("up", 2 * MB)
    cuts = server.proxy.cuts
    blob = artifact_store.put_file(tmp_path / "model.bin")
    assert server.proxy.cuts == cuts + 1
    assert server.artifacts.get_bytes(blob.hash) == data
    # the cut request's temp file goes as its handler notices the drop
    eventually(lambda: not list((server.store_root / "tmp").rglob("*.part")))


@pytest.mark.parametrize("operation", ["check", "clean_temp", "repair", "collect_garbage"])
def test_maintenance_over_http_is_refused_with_where_to_run_it(
    artifact_store: ArtifactStore, operation: str
) -> None:
    arguments: dict[str, tuple[Any, ...]] = {"repair": (None,), "collect_garbage": (set,)}
    with pytest.raises(InvalidInput, match="on the server") as caught:
        getattr(artifact_store, operation)(*arguments.get(operation, ()))
    assert "loopline" in str(caught.value)


def test_a_missing_blob_in_a_get_files_leaves_no_file(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    from loopline.errors import NotFound

    absent = StoredFile(b3(b"never stored anywhere"), 21)
    with pytest.raises(NotFound):
        artifact_store.get_files([(absent, tmp_path / "x")])
    assert list(tmp_path.iterdir()) == []


def test_put_blobs_over_http_checks_each_digest(artifact_store: ArtifactStore) -> None:
    data = os.urandom(100)
    assert artifact_store.put_blobs([(b3(data), data)]) == 100
    assert artifact_store.put_blobs([(b3(data), data)]) == 0
    with pytest.raises(InvalidInput, match="hashes"):
        artifact_store.put_blobs([(b3(b"other"), data)])
    assert artifact_store.get_bytes(b3(data)) == data
    assert Blob(b3(data), 100) == artifact_store.put_bytes(data)


def test_a_batch_upload_dropped_midway_is_sent_again_and_leaves_no_partial_pack(
    artifact_store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = small_files(200, seed=5)
    sources = write_files(tmp_path / "src", contents)
    server.proxy.cut_once("up", sum(map(len, contents.values())) // 2)
    cuts = server.proxy.cuts
    stored = artifact_store.put_files(sources)
    assert server.proxy.cuts == cuts + 1
    assert server.artifacts.missing({f.hash for f in stored}) == set()
    # the cut request's pack is discarded as its handler notices the drop
    eventually(lambda: not list((server.store_root / "tmp").glob("*.part")))
    targets = [tmp_path / "out" / f"{n}" for n in range(len(stored))]
    artifact_store.get_files(list(zip(stored, targets, strict=True)))
    assert [t.read_bytes() for t in targets] == list(contents.values())


class _BearerRoles:
    """The bearer token names the caller's role (a real Authenticator, for this test)."""

    def authenticate(self, request: Any) -> Any:
        from loopline.server._permissions import Caller, Role, Unauthorized

        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token.upper() not in Role.__members__:
            raise Unauthorized("no valid token")
        return Caller(f"{token}-user", Role[token.upper()])


def test_the_token_is_sent_and_the_servers_refusals_keep_their_meaning(tmp_path: Path) -> None:
    with blob_server(tmp_path / "auth", authenticator=_BearerRoles()) as guarded:
        writer = ArtifactStore(guarded.url, token="writer")
        reader = ArtifactStore(guarded.url, token="reader")
        anonymous = ArtifactStore(guarded.url)
        try:
            blob = writer.put_bytes(b"written by a writer")
            assert reader.get_bytes(blob.hash) == b"written by a writer"
            with pytest.raises(LooplineError, match="this needs writer") as refused:
                reader.put_bytes(b"a reader may not write")
            assert refused.value.http_status == 403
            with pytest.raises(LooplineError, match="no valid token") as unknown:
                anonymous.exists(blob.hash)
            assert unknown.value.http_status == 401
        finally:
            for store in (writer, reader, anonymous):
                store.close()
