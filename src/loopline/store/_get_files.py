"""`ArtifactStore.get_files`: restore files from packed and loose blobs, verified.

Blobs are read pack by pack in offset order, nearby ones coalesced into one read
(`plan_spans`), on a read-ahead thread while this thread verifies and writes. A file
stored as one blob is written to a hidden temp file beside its destination and renamed
into place; a chunked file's temp file is filled chunk by chunk, wherever each chunk
comes from, and renamed once all are in. A blob that fails verification raises
CorruptedData naming the file and the blob, and every unfinished temp file is removed:
no destination ever holds a partial file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from loopline.errors import CorruptedData, InvalidInput, NotFound
from loopline.store._backend import Backend, StoredFile
from loopline.store._buffers import ALIGNMENT, BufferPool
from loopline.store._packs import Location, PackIndex, background, plan_spans

EMPTY = blake3.blake3(b"").hexdigest()
_O_BINARY = getattr(os, "O_BINARY", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY
_HASH_THREADS_MIN = 1 << 20  # blobs this large are hashed on several threads
_LOOSE_IN_MEMORY_MAX = 64 << 20  # larger loose blobs are streamed to their destination
_BATCH_FILES = 64  # small files handed to a writer thread at once
_BATCH_BYTES = 1 << 20


@dataclass
class _Restore:
    """One destination being written."""

    stored: StoredFile
    dest: str
    folder: str
    temp: str
    remaining: int  # blob placements not written yet
    created: bool = False


@dataclass
class _Plan:
    files: list[_Restore]
    # each needed blob -> where it goes: (file number, offset in that file)
    targets: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def locate(
    backend: Backend,
    index: PackIndex,
    sizes: dict[str, int | None],
    owner: Callable[[str], str],
) -> tuple[dict[str, Location], list[str]]:
    """Find each blob in the packs (refreshing once if needed) or as a loose blob.

    Raises:
        NotFound: a blob is in neither; `owner(digest)` says what needed it.
        CorruptedData: the index records another size than the caller expects.
    """
    packed: dict[str, Location] = {}
    unknown = []
    for digest in sizes:
        found = index.get(digest)
        if found is None:
            unknown.append(digest)
        else:
            packed[digest] = found
    if unknown:
        index.refresh()
    loose_lookup = backend.loose_lookup(len(unknown))
    loose = []
    for digest in unknown:
        found = index.get(digest)
        if found is not None:
            packed[digest] = found
        elif loose_lookup(digest):
            loose.append(digest)
        else:
            raise NotFound(
                f"{owner(digest)}: blob {digest} is not in artifact store {backend.uri}",
                hint=index.damage_hint(),
            )
    for digest, where in packed.items():
        if sizes[digest] not in (None, where.length):
            raise CorruptedData(
                f"{owner(digest)}: blob {digest} is {sizes[digest]} bytes, but the index of "
                f"{backend.pack_location(where.pack_id)} says {where.length}"
            )
    return packed, loose


def read_packed(
    backend: Backend, packed: dict[str, Location]
) -> Generator[tuple[str, Location, memoryview], None, None]:
    """Each packed blob's bytes, unverified, pack by pack in offset order (read ahead).

    A blob's bytes are shorter than its length if the pack is truncated. Each view is
    valid only until the next blob is requested: its buffer is then reused.
    """
    by_pack: dict[str, list[tuple[int, int, str]]] = {}
    for digest, where in packed.items():
        by_pack.setdefault(where.pack_id, []).append((where.offset, where.length, digest))
    plans = [
        (pack_id, plan_spans(blobs, backend.span_gap, backend.span_max))
        for pack_id, blobs in sorted(by_pack.items())
    ]

    longest = max((end - start for _, planned in plans for start, end, _ in planned), default=0)
    buffers = BufferPool(min(longest, backend.span_max) + ALIGNMENT)

    def spans() -> Iterator[bytes | memoryview]:
        for pack_id, planned in plans:
            ranges = [(start, end) for start, end, _ in planned]
            yield from backend.read_spans(pack_id, ranges, buffers)

    planned_spans = (span for _, planned in plans for span in planned)
    with contextlib.closing(background(spans())) as data_of_spans:
        for (start, _, blobs), data in zip(planned_spans, data_of_spans, strict=True):
            view = memoryview(data)
            for offset, length, digest in blobs:
                yield digest, packed[digest], view[offset - start : offset - start + length]
            if buffers.owns(data):
                buffers.give_back(view)


def verify_blob(digest: str, data: memoryview | bytes, what: str) -> None:
    """Raise CorruptedData naming `what` unless `data` hashes to `digest`."""
    actual = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    if actual != digest:
        raise CorruptedData(
            f"{what} is corrupted: its content hashes to {actual}",
            hint="restore the pack from a backup, or store the original data again",
        )


def get_files(
    backend: Backend,
    index: PackIndex,
    items: Sequence[tuple[StoredFile, str]],
    read_loose: Callable[[str], bytes],
    copy_loose: Callable[[str, Path], None],
    progress: Callable[[int], None],
    workers: int,
) -> None:
    """Restore `items`; see `ArtifactStore.get_files`.

    `read_loose` returns a loose blob's verified bytes; `copy_loose` writes a large one
    to a destination itself (verified, atomically), so that it is never held in memory.
    Paths are plain strings here: building 20,000 Path objects costs more than writing
    the files' bytes.
    """
    plan = _plan(items)
    sizes: dict[str, int | None] = {}
    for restore in plan.files:
        for blob in restore.stored.blobs:
            sizes[blob.hash] = blob.size
    sizes.pop(EMPTY, None)  # every store can produce the empty blob
    packed, loose = locate(backend, index, sizes, lambda d: _owner(plan, d))
    writer = _Writer(plan, progress, workers)
    try:
        if EMPTY in plan.targets:
            writer.place(EMPTY, b"")
        with contextlib.closing(read_packed(backend, packed)) as blobs:
            for digest, where, data in blobs:
                threads = workers if len(data) >= _HASH_THREADS_MIN else 1
                if len(data) != where.length or (
                    blake3.blake3(data, max_threads=threads).hexdigest() != digest
                ):
                    what = f"cannot restore {_owner(plan, digest)}: blob {digest}"
                    what = f"{what} in {_where(backend, where)}"
                    if len(data) != where.length:
                        raise CorruptedData(f"{what} is truncated")
                    verify_blob(digest, data, what)
                writer.place(digest, data)
        for digest in loose:
            targets = plan.targets[digest]
            if (sizes[digest] or 0) > _LOOSE_IN_MEMORY_MAX and all(
                len(plan.files[number].stored.blobs) == 1 for number, _ in targets
            ):
                for number, _ in targets:
                    copy_loose(digest, Path(plan.files[number].dest))
                    progress(sizes[digest] or 0)
            else:
                writer.place(digest, read_loose(digest))  # read_loose verifies
        writer.finish()
    except BaseException:
        writer.discard()
        raise


def _plan(items: Sequence[tuple[StoredFile, str]]) -> _Plan:
    tag = uuid.uuid4().hex[:12]
    plan = _Plan([])
    for number, (stored, dest) in enumerate(items):
        folder, name = os.path.split(dest)
        temp = os.path.join(folder, f".{name}.{tag}.part")
        plan.files.append(_Restore(stored, dest, folder, temp, len(stored.blobs)))
        position = 0
        for blob in stored.blobs:
            plan.targets.setdefault(blob.hash, []).append((number, position))
            position += blob.size
    return plan


def _owner(plan: _Plan, digest: str) -> str:
    number = plan.targets[digest][0][0]
    return plan.files[number].dest


def _where(backend: Backend, where: Location) -> str:
    return f"{backend.pack_location(where.pack_id)} at offset {where.offset}"


class _Writer:
    """Writes verified blobs to their destinations' temp files, renaming finished ones.

    Small files go to `workers` threads in batches: creating a file waits in the kernel
    (the journal, the directory lock) more than it computes, and on this machine's disk
    two threads create 5,000 files in well under half the time of one. Chunks of large
    files are written by the caller's thread, which owns their temp files' state.
    """

    def __init__(self, plan: _Plan, progress: Callable[[int], None], workers: int) -> None:
        self._plan = plan
        self._progress = progress
        self._folders: set[str] = set()
        self._pool = ThreadPoolExecutor(workers, "loopline-write") if workers > 1 else None
        self._batch: list[tuple[_Restore, bytes]] = []
        self._batch_size = 0
        self._writing: deque[Future[None]] = deque()
        self._in_flight_max = 4 * workers

    def place(self, digest: str, data: memoryview | bytes) -> None:
        for number, offset in self._plan.targets[digest]:
            restore = self._plan.files[number]
            if restore.remaining == 1 and not restore.created:
                if restore.folder not in self._folders:
                    self._make_folder(restore)
                restore.created = True
                if self._pool is not None and len(data) < _BATCH_BYTES:
                    self._batch.append((restore, bytes(data)))  # `data`'s buffer is reused
                    self._batch_size += len(data)
                    if len(self._batch) >= _BATCH_FILES or self._batch_size >= _BATCH_BYTES:
                        self._send_batch()
                else:
                    _write_whole(restore, data)
            else:
                self._write_part(restore, offset, data)
            self._progress(len(data))

    def finish(self) -> None:
        """Wait for the batches in flight; re-raise the first error of a worker."""
        self._send_batch()
        while self._writing:
            self._writing.popleft().result()
        if self._pool is not None:
            self._pool.shutdown()

    def discard(self) -> None:
        """After an error: wait for the workers, then remove every unfinished temp file."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        for restore in self._plan.files:
            if restore.created and restore.remaining:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(restore.temp)

    def _send_batch(self) -> None:
        if not self._batch:
            return
        assert self._pool is not None
        self._writing.append(self._pool.submit(_write_batch, self._batch))
        self._batch, self._batch_size = [], 0
        while len(self._writing) > self._in_flight_max:
            self._writing.popleft().result()

    def _write_part(self, restore: _Restore, offset: int, data: memoryview | bytes) -> None:
        flags = os.O_WRONLY | _O_BINARY
        if not restore.created:
            if restore.folder not in self._folders:
                self._make_folder(restore)
            flags = _CREATE
        fd = os.open(restore.temp, flags, 0o666)
        restore.created = True
        try:
            _write_all(fd, data, offset)
        finally:
            os.close(fd)
        restore.remaining -= 1
        if not restore.remaining:
            _finish(restore)

    def _make_folder(self, restore: _Restore) -> None:
        if restore.folder:
            try:
                os.makedirs(restore.folder, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise InvalidInput(f"cannot write {restore.dest}: {exc}") from exc
        self._folders.add(restore.folder)


def _write_batch(batch: list[tuple[_Restore, bytes]]) -> None:
    for restore, data in batch:
        _write_whole(restore, data)


def _write_whole(restore: _Restore, data: memoryview | bytes) -> None:
    """Write a one-blob file to its temp file and rename it into place."""
    fd = os.open(restore.temp, _CREATE, 0o666)
    try:
        written = os.write(fd, data)
        if written < len(data):
            _write_all(fd, memoryview(data)[written:], written)
    finally:
        os.close(fd)
    _finish(restore)


def _finish(restore: _Restore) -> None:
    try:
        os.replace(restore.temp, restore.dest)
    except IsADirectoryError as exc:
        os.unlink(restore.temp)
        raise InvalidInput(f"cannot write {restore.dest}: it is a directory") from exc
    restore.remaining = 0


def _write_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    view = memoryview(data)
    if not hasattr(os, "pwrite"):  # Windows
        os.lseek(fd, offset, os.SEEK_SET)
        while view:
            view = view[os.write(fd, view) :]
        return
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
