"""Packed and chunked storage (`put_files`, `get_files`, `missing`, `copy_to`), local and S3."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from fixtures.blob_files import MB, b3, small_files, write_files
from fixtures.waiting import eventually
from loopline.errors import Conflict, CorruptedData, InvalidInput, NotFound
from loopline.store import _chunks, _copy_chunks, _packs
from loopline.store.artifacts import ArtifactStore, Blob, StoredFile

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def small_read_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read large files in 5 MiB pieces, so that small test files cross piece boundaries."""
    monkeypatch.setattr(_chunks, "SEGMENT", 5 * MB)


class Objects:
    """A store's objects read and written behind its back (disk damage, tampering)."""

    def __init__(self, store: ArtifactStore, client: Any) -> None:
        self.s3 = store.uri.startswith("s3://")
        self.root = store.uri
        self.client = client
        if self.s3:
            self.bucket, _, self.prefix = store.uri.removeprefix("s3://").partition("/")

    def keys(self, folder: str) -> list[str]:
        if self.s3:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/{folder}/"
            )
            return sorted(
                obj["Key"].removeprefix(f"{self.prefix}/")
                for page in pages
                for obj in page.get("Contents", [])
            )
        base = Path(self.root)
        return sorted(p.relative_to(base).as_posix() for p in base.glob(f"{folder}/**/*.*"))

    def read(self, key: str) -> bytes:
        if self.s3:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"]
            return bytes(body.read())
        return Path(self.root, key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        if self.s3:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)
        else:
            Path(self.root, key).write_bytes(data)

    def delete(self, key: str) -> None:
        if self.s3:
            self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        else:
            Path(self.root, key).unlink()

    def pack_bytes(self) -> int:
        return sum(len(self.read(key)) for key in self.keys("packs") if key.endswith(".pack"))


@pytest.fixture
def objects(artifact_store: ArtifactStore, request: pytest.FixtureRequest) -> Objects:
    client = request.getfixturevalue("s3_client") if artifact_store.uri.startswith("s3") else None
    return Objects(artifact_store, client)


def _reopen(store: ArtifactStore, request: pytest.FixtureRequest) -> ArtifactStore:
    """A second store object on the same location, with nothing loaded in memory."""
    if store.uri.startswith("s3://"):
        return ArtifactStore(store.uri, s3_endpoint_url=request.getfixturevalue("s3_endpoint"))
    return ArtifactStore(store.uri)


def _restore_and_compare(
    store: ArtifactStore, stored: list[StoredFile], sources: list[Path], dest: Path
) -> None:
    targets = [dest / source.name for source in sources]
    store.get_files(list(zip(stored, targets, strict=True)))
    for source, target in zip(sources, targets, strict=True):
        assert target.read_bytes() == source.read_bytes(), target
    assert not list(dest.rglob(".*.part"))


def test_small_and_large_files_round_trip(
    artifact_store: ArtifactStore,
    objects: Objects,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    contents = small_files(300)
    contents["medium.bin"] = os.urandom(MB)  # hashed on a worker thread
    # seeded: content-defined chunk boundaries depend on the bytes (random 5 MB once
    # fell into two chunks)
    seeded = random.Random(20261204)
    contents["large.bin"] = seeded.randbytes(5 * MB)  # chunked
    contents["larger.bin"] = seeded.randbytes(11 * MB + 123)  # read in three pieces
    sources = write_files(tmp_path / "src", contents)

    stored = artifact_store.put_files(sources)

    assert [f.size for f in stored] == [len(data) for data in contents.values()]
    for result, data in zip(stored, contents.values(), strict=True):
        if len(data) < 4 * MB:
            assert result.hash == b3(data) and result.chunks == ()
        else:
            assert len(result.chunks) >= 2 and sum(c.size for c in result.chunks) == len(data)
            assert result.hash != b3(data)
    assert objects.keys("blobs") == []  # everything packed, nothing loose
    assert {key.rpartition(".")[2] for key in objects.keys("packs")} == {"pack", "idx"}

    fresh = _reopen(artifact_store, request)  # loads the index from the store
    _restore_and_compare(fresh, stored, sources, tmp_path / "out")


def test_chunks_are_content_defined_and_independent_of_read_boundaries(tmp_path: Path) -> None:
    from pyfastcdc import FastCDC

    data = os.urandom(4 * _chunks.SEGMENT + 12345)  # several read pieces
    [source] = write_files(tmp_path, {"big.bin": data})
    [stored] = ArtifactStore(str(tmp_path / "store")).put_files([source])

    cutter = FastCDC(_chunks.CHUNK_AVG, min_size=_chunks.CHUNK_MIN, max_size=_chunks.CHUNK_MAX)
    expected = [Blob(b3(bytes(chunk.data)), chunk.length) for chunk in cutter.cut_buf(data)]
    assert list(stored.chunks) == expected
    ids = b"".join(bytes.fromhex(c.hash) + struct.pack("<Q", c.size) for c in expected)
    assert stored.hash == b3(b"loopline-chunked-v1\n" + ids)


def test_storing_the_same_files_again_writes_nothing(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    contents = small_files(50)
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path / "a", contents)
    copies = write_files(tmp_path / "b", contents)  # same content under other names
    first = artifact_store.put_files(sources + sources[:5])
    stored_bytes = objects.pack_bytes()
    packs = objects.keys("packs")

    assert artifact_store.put_files(copies) == first[: len(copies)]
    assert objects.keys("packs") == packs
    unique = {f.hash: f for f in first}.values()
    blob_bytes = sum(b.size for f in unique for b in f.blobs)
    padding = 63 * sum(len(f.chunks) for f in unique)  # chunks keep their file offset mod 64
    header = _copy_chunks.DATA_OFFSET  # a large file copied into its own pack starts there
    assert stored_bytes <= blob_bytes + len(packs) * header + padding


@pytest.mark.parametrize("edit", ["overwrite", "insert"])
def test_editing_one_region_of_a_large_file_stores_only_nearby_chunks(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path, edit: str
) -> None:
    data = bytearray(os.urandom(12 * MB))
    [source] = write_files(tmp_path, {"table.csv": bytes(data)})
    [before] = artifact_store.put_files([source])
    stored_before = objects.pack_bytes()

    middle = len(data) // 2
    if edit == "overwrite":
        data[middle : middle + 40] = b"x" * 40
    else:
        data[middle:middle] = b"1,new row,3.5\n"
    source.write_bytes(data)
    [after] = artifact_store.put_files([source])

    new_bytes = objects.pack_bytes() - stored_before
    assert 0 < new_bytes <= 2 * _chunks.CHUNK_MAX
    assert len(set(after.chunks) - set(before.chunks)) <= 2
    _restore_and_compare(artifact_store, [after], [source], tmp_path / "out")


def test_one_worker_round_trips(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    contents = small_files(20)
    contents["medium.bin"] = os.urandom(MB)
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path / "src", contents)
    stored = artifact_store.put_files(sources, workers=1)
    assert stored == artifact_store.put_files(sources)  # the same ids, whatever the threads
    targets = [tmp_path / "out" / p.name for p in sources]
    artifact_store.get_files(list(zip(stored, targets, strict=True)), workers=1)
    assert [t.read_bytes() for t in targets] == list(contents.values())


def test_empty_file_round_trips(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    [source] = write_files(tmp_path, {"empty.txt": b""})
    [stored] = artifact_store.put_files([source])
    assert stored == StoredFile(b3(b""), 0)
    assert artifact_store.exists(stored.hash)
    _restore_and_compare(artifact_store, [stored], [source], tmp_path / "out")


def test_file_deleted_after_listing_is_not_found_and_nothing_is_stored(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    sources = write_files(tmp_path, small_files(20))
    sources[12].unlink()  # listed, then deleted before the add reads it
    with pytest.raises(NotFound, match=r"f0012\.bin: no such file"):
        artifact_store.put_files(sources)
    assert objects.keys("packs") == []
    hashes = {b3(path.read_bytes()) for path in sources if path.exists()}
    assert artifact_store.missing(hashes) == hashes


@contextlib.contextmanager
def _appending(path: Path) -> Iterator[None]:
    """Keep appending lines to `path` (a training log) until the block ends."""
    stop = threading.Event()

    def keep_appending() -> None:
        with open(path, "ab") as log:
            while not stop.is_set():
                log.write(b"epoch done\n")
                log.flush()

    appender = threading.Thread(target=keep_appending)
    appender.start()
    try:
        yield
    finally:
        stop.set()
        appender.join()


def test_large_file_growing_while_stored_is_a_conflict(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    [source] = write_files(tmp_path, {"train.log": os.urandom(12 * MB)})
    with _appending(source), pytest.raises(Conflict, match="changed while it was being stored"):
        artifact_store.put_files([source])
    assert objects.keys("packs") == []


def test_large_files_store_normally_after_a_conflict_mid_file(tmp_path: Path) -> None:
    # A call that fails part-way may still hold read buffers: later calls must neither
    # wait for them nor mix up data.
    store = ArtifactStore(str(tmp_path / "store"))
    [growing] = write_files(tmp_path / "log", {"train.log": os.urandom(12 * MB)})
    with _appending(growing), pytest.raises(Conflict):
        store.put_files([growing])
    sources = write_files(
        tmp_path / "src", {"a.bin": os.urandom(11 * MB), "b.bin": os.urandom(9 * MB)}
    )
    for source in sources:  # one call each: the second reuses the first one's buffers
        stored = store.put_files([source])
        _restore_and_compare(store, stored, [source], tmp_path / "out")


def _flip_byte_of(objects: Objects, content: bytes) -> None:
    """Flip one byte of `content` where it sits inside a pack."""
    for key in objects.keys("packs"):
        if key.endswith(".pack") and (offset := (pack := objects.read(key)).find(content)) >= 0:
            position = offset + len(content) // 2
            objects.write(key, pack[:position] + bytes([pack[position] ^ 1]) + pack[position + 1 :])
            return
    raise AssertionError("content not found in any pack")


def test_corrupted_byte_in_a_pack_is_detected_and_no_file_is_written(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    contents = {"ok.bin": os.urandom(3000), "bad.bin": os.urandom(5000)}
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path / "src", contents)
    stored = artifact_store.put_files(sources)
    _flip_byte_of(objects, contents["bad.bin"])

    with pytest.raises(CorruptedData, match=stored[1].hash) as caught:
        artifact_store.get_bytes(stored[1].hash)
    assert "packs/" in caught.value.message
    with pytest.raises(CorruptedData, match=stored[1].hash):
        artifact_store.get_file(stored[1].hash, tmp_path / "single" / "bad.bin")
    assert list((tmp_path / "single").glob("*")) == []

    out = tmp_path / "out"
    (out / "bad.bin").parent.mkdir()
    (out / "bad.bin").write_bytes(b"previous version")
    with pytest.raises(CorruptedData, match=stored[1].hash) as caught:
        artifact_store.get_files([(f, out / p.name) for f, p in zip(stored, sources, strict=True)])
    assert str(out / "bad.bin") in caught.value.message
    assert (out / "bad.bin").read_bytes() == b"previous version"
    # Files complete before the bad blob was reached may stay (packs are read in id
    # order); no partial or temp file does.
    names = {p.name for p in out.iterdir()}
    assert "bad.bin" in names and names <= {"bad.bin", "ok.bin", "large.bin"}


def test_corrupted_chunk_of_a_large_file_is_detected(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    data = os.urandom(8 * MB)
    [source] = write_files(tmp_path / "src", {"large.bin": data})
    [stored] = artifact_store.put_files([source])
    bad = stored.chunks[len(stored.chunks) // 2]
    offset = sum(c.size for c in stored.chunks[: len(stored.chunks) // 2])
    _flip_byte_of(objects, data[offset : offset + bad.size])

    dest = tmp_path / "out" / "large.bin"
    with pytest.raises(CorruptedData, match=bad.hash) as caught:
        artifact_store.get_files([(stored, dest)])
    assert str(dest) in caught.value.message
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_chunk_list_that_does_not_match_the_file_id_is_corrupted(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    [source] = write_files(tmp_path, {"large.bin": os.urandom(6 * MB)})
    [stored] = artifact_store.put_files([source])
    tampered = StoredFile(stored.hash, stored.size, tuple(reversed(stored.chunks)))
    with pytest.raises(CorruptedData, match="chunk list does not match"):
        artifact_store.get_files([(tampered, tmp_path / "out.bin")])
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "future version"])
def test_damaged_index_is_ignored_with_a_warning_and_repaired_by_storing_again(
    artifact_store: ArtifactStore,
    objects: Objects,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    sources = write_files(tmp_path / "src", small_files(10))
    stored = artifact_store.put_files(sources)
    [index_key] = [key for key in objects.keys("packs") if key.endswith(".idx")]
    index = objects.read(index_key)
    if damage == "truncated":
        objects.write(index_key, index[:-10])
    elif damage == "garbage":
        objects.write(index_key, os.urandom(len(index)))
    else:
        body = index[:8] + struct.pack("<I", 2) + index[12:-32]
        objects.write(index_key, body + blake3.blake3(body).digest())

    fresh = _reopen(artifact_store, request)
    hashes = {f.hash for f in stored}
    with caplog.at_level(logging.WARNING, logger="loopline.store._packs"):
        assert fresh.missing(hashes) == hashes
    assert "damaged pack index" in caplog.text and index_key in caplog.text
    with pytest.raises(NotFound, match=stored[0].hash) as caught:
        fresh.get_files([(stored[0], tmp_path / "out" / "f.bin")])
    assert "damaged" in str(caught.value.hint)

    assert fresh.put_files(sources) == stored  # stores them again, in a new pack
    _restore_and_compare(_reopen(artifact_store, request), stored, sources, tmp_path / "out")


def test_pack_without_its_file_is_ignored_and_cleaned(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    stored = artifact_store.put_files(write_files(tmp_path, small_files(5)))
    [pack_key] = [key for key in objects.keys("packs") if key.endswith(".pack")]
    objects.delete(pack_key)
    hashes = {f.hash for f in stored}
    assert _reopen(artifact_store, request).missing(hashes) == hashes
    assert artifact_store.clean_temp(older_than=0) == 1  # the orphan .idx
    assert objects.keys("packs") == []


def test_packs_roll_over_at_the_target_size(
    artifact_store: ArtifactStore,
    objects: Objects,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setattr(_packs, "PACK_TARGET", 64 << 10)
    sources = write_files(tmp_path, small_files(60))
    stored = artifact_store.put_files(sources)
    packs = [key for key in objects.keys("packs") if key.endswith(".pack")]
    assert len(packs) >= 5
    assert all(len(objects.read(key)) <= (64 << 10) + 20_000 for key in packs)
    _restore_and_compare(_reopen(artifact_store, request), stored, sources, tmp_path / "out")


def test_packed_blobs_are_found_by_exists_get_bytes_and_get_file(
    artifact_store: ArtifactStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    reader = _reopen(artifact_store, request)
    assert not reader.exists(b3(b"x" * 100))  # loads the (empty) index before the put
    [source] = write_files(tmp_path, {"x.bin": b"x" * 100})
    [stored] = artifact_store.put_files([source])
    # `reader` learns about the new pack when a lookup misses
    assert reader.exists(stored.hash)
    assert reader.get_bytes(stored.hash) == b"x" * 100
    reader.get_file(stored.hash, tmp_path / "out" / "x.bin")
    assert (tmp_path / "out" / "x.bin").read_bytes() == b"x" * 100


def test_missing_reports_blobs_stored_neither_loose_nor_packed(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    loose = artifact_store.put_bytes(b"a loose blob")
    [packed] = artifact_store.put_files(write_files(tmp_path, {"p.bin": b"a packed blob"}))
    absent = b3(b"never stored")
    assert artifact_store.missing([loose.hash, packed.hash, absent]) == {absent}
    assert artifact_store.missing([]) == set()
    with pytest.raises(InvalidInput, match="not a blob hash"):
        artifact_store.missing(["nope"])


def test_loose_blobs_are_not_stored_again_and_restore_through_get_files(
    artifact_store: ArtifactStore, objects: Objects, tmp_path: Path
) -> None:
    loose = artifact_store.put_bytes(b"already here")
    [source] = write_files(tmp_path, {"same.bin": b"already here"})
    [stored] = artifact_store.put_files([source])
    assert stored.hash == loose.hash
    assert objects.keys("packs") == []
    _restore_and_compare(artifact_store, [stored], [source], tmp_path / "out")


def test_large_loose_blob_is_streamed_to_its_destination(
    artifact_store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.store import _get_files

    monkeypatch.setattr(_get_files, "_LOOSE_IN_MEMORY_MAX", 10)  # "large" from 11 bytes
    blob = artifact_store.put_bytes(b"a model, stored loose by put_bytes")
    dest = tmp_path / "out" / "model.bin"
    artifact_store.get_files([(StoredFile(blob.hash, blob.size), dest)])
    assert dest.read_bytes() == b"a model, stored loose by put_bytes"


def test_progress_reports_every_byte(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    contents = small_files(30)
    contents["large.bin"] = os.urandom(5 * MB)
    sources = write_files(tmp_path, contents)
    total = sum(map(len, contents.values()))
    added: list[int] = []
    stored = artifact_store.put_files(sources, progress=added.append)
    restored: list[int] = []
    artifact_store.get_files(
        [(f, tmp_path / "out" / p.name) for f, p in zip(stored, sources, strict=True)],
        progress=restored.append,
    )
    assert sum(added) == total == sum(restored)


def test_get_files_replaces_existing_files_and_creates_folders(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    [source] = write_files(tmp_path, {"new.txt": b"new content"})
    [stored] = artifact_store.put_files([source])
    (tmp_path / "old.txt").write_bytes(b"old content, longer than the new one")
    targets = [tmp_path / "old.txt", tmp_path / "a" / "b" / "c.txt"]
    artifact_store.get_files([(stored, target) for target in targets])
    assert [target.read_bytes() for target in targets] == [b"new content"] * 2


def test_get_files_rejects_malformed_items(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    [source] = write_files(tmp_path, {"f.txt": b"content"})
    [stored] = artifact_store.put_files([source])
    bad_items: list[Any] = [
        [(stored, tmp_path / "a"), (stored, tmp_path / "a")],
        [(StoredFile("A" * 64, 1), tmp_path / "a")],
        [("not a stored file", tmp_path / "a")],
        [(stored, tmp_path)],  # a directory
    ]
    for items in bad_items:
        with pytest.raises(InvalidInput):
            artifact_store.get_files(items)
    with pytest.raises(InvalidInput, match="expects a list"):
        artifact_store.put_files(str(source))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="workers"):
        artifact_store.put_files([source], workers=0)


def test_concurrent_writers_with_overlapping_files_both_succeed(
    artifact_store: ArtifactStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    contents = small_files(200)
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path / "src", contents)
    halves = [sources[:130] + sources[-1:], sources[70:]]  # overlap: 60 small + the large one
    start = threading.Barrier(2)
    results: dict[int, list[StoredFile]] = {}

    def add(number: int) -> None:
        store = _reopen(artifact_store, request)  # as another process would: its own index
        start.wait()
        results[number] = store.put_files(halves[number])

    threads = [threading.Thread(target=add, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    by_path = dict(zip(halves[0], results[0], strict=True))
    for path, stored in zip(halves[1], results[1], strict=True):
        assert by_path.setdefault(path, stored) == stored
    stored_files = [by_path[path] for path in sources]
    _restore_and_compare(_reopen(artifact_store, request), stored_files, sources, tmp_path / "out")


def test_copy_to_pushes_and_pulls_between_local_and_s3(tmp_path: Path, s3_uri: Any) -> None:
    local = ArtifactStore(str(tmp_path / "local"))
    remote = ArtifactStore(s3_uri.uri, s3_endpoint_url=s3_uri.endpoint_url)
    contents = small_files(100)
    contents["large.bin"] = os.urandom(6 * MB)
    sources = write_files(tmp_path / "src", contents)
    stored = local.put_files(sources)
    loose = local.put_bytes(b"a run artifact, stored loose")
    hashes = {b.hash for f in stored for b in f.blobs} | {loose.hash}

    pushed: list[int] = []
    copied = local.copy_to(remote, hashes, progress=pushed.append)
    assert (
        copied
        == sum(pushed)
        == sum(len(d) for d in {b3(d): d for d in contents.values()}.values()) + loose.size
    )
    assert remote.missing(hashes) == set()
    assert local.copy_to(remote, hashes) == 0  # nothing left to push

    fresh = ArtifactStore(str(tmp_path / "fresh"))
    assert remote.copy_to(fresh, hashes) == copied
    _restore_and_compare(fresh, stored, sources, tmp_path / "out")
    assert fresh.get_bytes(loose.hash) == b"a run artifact, stored loose"

    [extra] = fresh.put_files(write_files(tmp_path / "more", {"extra.bin": b"made after the pull"}))
    assert fresh.copy_to(remote, hashes | {extra.hash}) == extra.size  # and back
    assert local.copy_to(remote, hashes) == 0
    assert remote.get_bytes(extra.hash) == b"made after the pull"


def test_copy_to_copies_large_loose_blobs_loose(
    tmp_path: Path, s3_uri: Any, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.store import _copy_to

    monkeypatch.setattr(_copy_to, "COPY_PACKED_MAX", 10)  # "large" from 11 bytes
    local = ArtifactStore(str(tmp_path / "local"))
    remote = ArtifactStore(s3_uri.uri, s3_endpoint_url=s3_uri.endpoint_url)
    blob = local.put_bytes(b"weights too large to pack")
    assert local.copy_to(remote, [blob.hash]) == blob.size
    assert remote.get_bytes(blob.hash) == b"weights too large to pack"
    objects = Objects(remote, s3_client)
    assert objects.keys("packs") == []
    assert objects.keys("blobs") == [f"blobs/{blob.hash[:2]}/{blob.hash[2:]}"]


def test_copy_to_a_store_lacking_a_blob_that_this_store_lacks_too(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    other = ArtifactStore(str(tmp_path / "other"))
    absent = b3(b"nowhere")
    with pytest.raises(NotFound, match=absent):
        artifact_store.copy_to(other, [absent])


def test_clean_temp_keeps_recent_orphan_packs(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    (tmp_path / "packs").mkdir()
    fresh = tmp_path / "packs" / "fresh.pack"
    fresh.write_bytes(_packs.PACK_HEADER)
    stale = tmp_path / "packs" / "stale.pack"
    stale.write_bytes(_packs.PACK_HEADER)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert store.clean_temp() == 1
    assert list((tmp_path / "packs").iterdir()) == [fresh]


KILLED_WRITER = """
import sys, time
from loopline.store import _local_blobs, _packs, _s3_blobs

_packs.PACK_TARGET = 1 << 40  # everything in one pack, so the kill lands inside it
_s3_blobs._PART = 5 << 20  # the smallest multipart part S3 allows
for sink in (_local_blobs.LocalPackSink, _s3_blobs.S3PackSink):
    def slow_write(self, buffers, _write=sink.write):
        _write(self, buffers)
        time.sleep(0.2)  # give the test time to see a partial pack and kill us
    sink.write = slow_write

from loopline.store.artifacts import ArtifactStore

store = ArtifactStore(sys.argv[1], s3_endpoint_url=sys.argv[2] or None)
store.put_files(sys.argv[3:])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_writer_killed_mid_pack_leaves_no_visible_blob(
    artifact_store: ArtifactStore,
    objects: Objects,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    contents = {f"part{n}.bin": os.urandom(MB) for n in range(16)}
    sources = write_files(tmp_path / "src", contents)
    endpoint = request.getfixturevalue("s3_endpoint") if objects.s3 else ""
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, artifact_store.uri, endpoint, *map(str, sources)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        _wait_for_partial_pack(objects, tmp_path / "src", writer)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=10) == -signal.SIGKILL
    finally:
        writer.kill()

    hashes = {b3(data) for data in contents.values()}
    assert _reopen(artifact_store, request).missing(hashes) == hashes
    assert [key for key in objects.keys("packs") if key.endswith(".idx")] == []
    assert artifact_store.clean_temp(older_than=0) >= 1
    assert objects.keys("packs") == []
    if objects.s3:
        uploads = objects.client.list_multipart_uploads(Bucket=objects.bucket)
        assert uploads.get("Uploads", []) == []
    else:
        assert list(Path(artifact_store.uri, "tmp").iterdir()) == []


def _wait_for_partial_pack(objects: Objects, src: Path, writer: subprocess.Popen[bytes]) -> None:
    def partial_pack_seen() -> bool:
        assert writer.poll() is None, "the writer exited on its own"
        if objects.s3:
            uploads = objects.client.list_multipart_uploads(Bucket=objects.bucket)
            for upload in uploads.get("Uploads", []):
                parts = objects.client.list_parts(
                    Bucket=objects.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                if parts.get("Parts"):
                    return True
            return False
        temp = Path(objects.root, "tmp")
        with_bytes = list(temp.glob("*.part")) if temp.is_dir() else []
        return any(part.stat().st_size > MB for part in with_bytes)

    eventually(
        partial_pack_seen,
        timeout=30,
        interval=0.005,
        message="the writer never got going",
        ignoring=(FileNotFoundError,),  # a part renamed between the listing and the stat
    )
