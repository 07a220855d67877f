"""Large files copied by the kernel into a local pack, then cut and hashed in place
(_copy_chunks.py): what it stores, when it falls back to reading, and how it fails."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from loopline.errors import Conflict, StoreUnavailable
from loopline.store import _chunks, _copy_chunks, _local_blobs
from loopline.store.artifacts import ArtifactStore, StoredFile

MB = 1 << 20
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the copy path is Linux only")


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copy in 5 MiB pieces, so that test files take several."""
    monkeypatch.setattr(_chunks, "SEGMENT", 5 * MB)


def _packs(store: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (store / "packs").glob("*.pack")}


def _leftovers(store: Path) -> list[Path]:
    return list((store / "tmp").glob("*.part"))


def _restored(store: ArtifactStore, stored: StoredFile, dest: Path) -> bytes:
    store.get_files([(stored, dest)])
    return dest.read_bytes()


def _stored_by_reading(
    monkeypatch: pytest.MonkeyPatch, source: Path, store: Path
) -> list[StoredFile]:
    with monkeypatch.context() as patch:
        patch.setattr(_copy_chunks, "copying_backend", lambda backend: None)
        return ArtifactStore(str(store)).put_files([source])


def test_new_large_file_becomes_its_own_pack_with_the_same_chunks_as_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(17 * MB + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store = ArtifactStore(str(tmp_path / "store"))
    [stored] = store.put_files([source])

    assert [stored] == _stored_by_reading(monkeypatch, source, tmp_path / "read")
    assert len(stored.chunks) > 3
    assert list(_packs(tmp_path / "store").values()) == [_copy_chunks.DATA_OFFSET + len(data)]
    [pack] = (tmp_path / "store" / "packs").glob("*.pack")
    assert pack.stat().st_blocks * 512 <= len(data) + (64 << 10)  # the gap is a hole
    assert _leftovers(tmp_path / "store") == []
    fresh = ArtifactStore(str(tmp_path / "store"))  # reads the index from disk
    assert _restored(fresh, stored, tmp_path / "out" / "big.bin") == data


def test_repeated_content_is_stored_once_and_the_copy_removed(tmp_path: Path) -> None:
    block = os.urandom(3 * MB)
    data = block * 6  # chunks repeat: far less than 90 % of the file is new
    source = tmp_path / "repeats.bin"
    source.write_bytes(data)
    store = ArtifactStore(str(tmp_path / "store"))
    [stored] = store.put_files([source])

    unique = sum(chunk.size for chunk in {c.hash: c for c in stored.chunks}.values())
    assert unique < len(data) / 2
    assert sum(_packs(tmp_path / "store").values()) <= unique + 64 * len(stored.chunks) + 4096
    assert _leftovers(tmp_path / "store") == []
    assert _restored(store, stored, tmp_path / "out" / "repeats.bin") == data


@pytest.mark.parametrize(("where", "copied"), [("middle", False), ("start", True)])
def test_edited_file_stores_only_its_new_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, copied: bool
) -> None:
    # An edit past the first chunk is seen as an old file and read, not copied; an edit
    # in the first chunk is copied, and only its new chunks are kept from the copy.
    data = bytearray(os.urandom(16 * MB))
    source = tmp_path / "table.csv"
    source.write_bytes(data)
    store = ArtifactStore(str(tmp_path / "store"))
    store.put_files([source])
    before = sum(_packs(tmp_path / "store").values())

    at = len(data) // 2 if where == "middle" else 100
    data[at : at + 10] = b"0123456789"
    source.write_bytes(data)
    copy_from = _local_blobs.LocalPackSink.copy_from
    calls = []

    def counted(sink: _local_blobs.LocalPackSink, *args: int) -> int:
        calls.append(args)
        return copy_from(sink, *args)

    monkeypatch.setattr(_local_blobs.LocalPackSink, "copy_from", counted)
    [stored] = store.put_files([source])

    assert bool(calls) is copied
    assert 0 < sum(_packs(tmp_path / "store").values()) - before <= 2 * _chunks.CHUNK_MAX + 4096
    assert _leftovers(tmp_path / "store") == []
    assert _restored(store, stored, tmp_path / "out" / "table.csv") == data


def test_unchanged_file_stored_again_is_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 * MB))
    store = ArtifactStore(str(tmp_path / "store"))
    [first] = store.put_files([source])
    packs = _packs(tmp_path / "store")

    def refuse(*args: object) -> int:
        raise AssertionError("copied a file whose first chunk is stored")

    monkeypatch.setattr(_local_blobs.LocalPackSink, "copy_from", refuse)
    assert store.put_files([source]) == [first]
    assert _packs(tmp_path / "store") == packs


def test_file_system_that_cannot_copy_falls_back_to_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 * MB))
    expected = _stored_by_reading(monkeypatch, source, tmp_path / "read")

    def refuse(*args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "sendfile", refuse)
    store = ArtifactStore(str(tmp_path / "store"))
    assert store.put_files([source, source]) == expected * 2
    assert _leftovers(tmp_path / "store") == []
    assert _restored(store, expected[0], tmp_path / "out.bin") == source.read_bytes()


def test_disk_full_mid_copy_fails_cleanly_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * MB))
    copy_from = _local_blobs.LocalPackSink.copy_from
    calls = []

    def fill_up(sink: _local_blobs.LocalPackSink, *args: int) -> int:
        calls.append(args)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return copy_from(sink, *args)

    monkeypatch.setattr(_local_blobs.LocalPackSink, "copy_from", fill_up)
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(StoreUnavailable, match="No space left on device"):
        store.put_files([source])
    assert _packs(tmp_path / "store") == {}
    assert _leftovers(tmp_path / "store") == []

    monkeypatch.setattr(_local_blobs.LocalPackSink, "copy_from", copy_from)
    [stored] = store.put_files([source])  # the store still works
    assert _restored(store, stored, tmp_path / "out.bin") == source.read_bytes()


def test_file_truncated_while_copied_is_a_conflict(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(16 * MB))

    def truncate_once(done: int) -> None:
        if source.stat().st_size > MB:
            os.truncate(source, MB)

    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(Conflict, match="changed while it was being stored"):
        store.put_files([source], progress=truncate_once)
    assert _packs(tmp_path / "store") == {}
    assert _leftovers(tmp_path / "store") == []
