"""`ArtifactStore.put_files`: hash many files and append the new content to pack files.

Measured on 2 cores: for files of a few KB, a thread pool is about twice as slow as one
thread (each tiny read releases and re-takes the GIL, and the threads queue for it), so
small files are read and hashed in the caller's thread with as few system calls and
Python calls as possible (open, fstat, read, fstat, close), and only the pack writes,
handed over in 4 MiB batches and written in 256 KiB `writev` calls (_packs.py), run on
the pack writer's I/O thread. Files of `POOLED_MIN` bytes or more are then read and
hashed by worker threads, where BLAKE3 and the reads release the GIL for long enough to
pay off; files of `CHUNKED_MIN` bytes or more are chunked last: copied by the kernel into
a pack of their own and cut there in a local store on Linux (_copy_chunks.py), read and
cut in memory elsewhere (_chunks.py).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from stat import S_ISREG

import blake3

from loopline.store._backend import Backend, StoredFile
from loopline.store._buffers import read_into, scratch
from loopline.store._chunks import CHUNKED_MIN, chunk_buffers, keep_chunk_buffers, put_chunked
from loopline.store._copy_chunks import copying_backend, put_copied, seen_before
from loopline.store._hashing import OPEN_FLAGS, changed, check_regular, open_source_fd, source_error
from loopline.store._packs import PackIndex, PackWriter

POOLED_MIN = 256 << 10  # smaller files are read and hashed in the caller's thread
_preadv = getattr(os, "preadv", None)  # not on Windows
_POOLED_IN_FLIGHT = 64 << 20  # bytes of pooled files read ahead of the pack writer


def put_files(
    backend: Backend,
    index: PackIndex,
    paths: Sequence[str],
    workers: int,
    progress: Callable[[int], None],
) -> list[StoredFile]:
    """Store `paths` into new packs; see `ArtifactStore.put_files`."""
    index.refresh()  # once: a blob another process adds meanwhile is at worst stored twice
    results: list[StoredFile | None] = [None] * len(paths)
    buffers = None
    with (
        PackWriter(backend, index, backend.loose_lookup(len(paths))) as writer,
        ThreadPoolExecutor(workers, thread_name_prefix="loopline-hash") as pool,
    ):
        add = writer.add
        inline_max = POOLED_MIN if workers > 1 else CHUNKED_MIN
        larger: list[int] = []
        scratch_buffer = scratch(inline_max + 1)
        for number, path in enumerate(paths):
            read = _read_whole(path, inline_max, scratch_buffer)
            if isinstance(read, int):
                larger.append(number)
                continue
            digest, data = read
            add(digest, data)
            results[number] = StoredFile(digest, len(data))
            progress(len(data))
        local = copying_backend(backend)
        for number in _put_pooled(paths, larger, pool, writer, results, progress):
            path = paths[number]
            fd, before = open_source_fd(path)
            try:
                if local is not None and not seen_before(fd, before.st_size, writer):
                    copied = put_copied(path, fd, before, local, index, writer, pool, progress)
                    if copied is not None:
                        results[number] = copied
                        continue
                    local = None  # the next files would not copy either: read them
                if buffers is None:
                    buffers = chunk_buffers()
                results[number] = put_chunked(path, fd, before, writer, pool, buffers, progress)
            finally:
                os.close(fd)
    if buffers is not None:  # the writer has closed: every buffer is back
        keep_chunk_buffers(buffers)
    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]  # every slot was filled above


def _put_pooled(
    paths: Sequence[str],
    numbers: list[int],
    pool: ThreadPoolExecutor,
    writer: PackWriter,
    results: list[StoredFile | None],
    progress: Callable[[int], None],
) -> list[int]:
    """Read and hash the files `numbers` on the pool; return those to chunk instead."""
    chunked = []
    reading: deque[tuple[int, Future[tuple[str, bytes] | int]]] = deque()
    in_flight = 0

    def finish() -> int:
        number, job = reading.popleft()
        read = job.result()
        if isinstance(read, int):  # large enough to chunk (it may have grown meanwhile)
            chunked.append(number)
            return 0
        digest, data = read
        writer.add(digest, data)
        results[number] = StoredFile(digest, len(data))
        progress(len(data))
        return len(data)

    for number in numbers:
        reading.append((number, pool.submit(_read_whole, paths[number], CHUNKED_MIN)))
        in_flight += CHUNKED_MIN
        while in_flight > _POOLED_IN_FLIGHT:
            in_flight -= CHUNKED_MIN
            finish()
    while reading:
        finish()
    return chunked


def _read_whole(path: str, limit: int, buffer: memoryview | None = None) -> tuple[str, bytes] | int:
    """Read and hash a file smaller than `limit`; return a larger file's size, unread.

    `buffer`, this thread's `scratch` of at least `limit + 1` bytes, saves looking it up.

    Raises:
        NotFound: no such file.
        InvalidInput: a directory, not a regular file, or not readable.
        Conflict: its size or modification time changed while it was read.
    """
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        raise source_error(path, exc) from exc
    try:
        before = os.fstat(fd)
        if not S_ISREG(before.st_mode):
            check_regular(path, before.st_mode)
        size = before.st_size
        if size >= limit:
            return size
        # Into an aligned buffer, then copied: see _buffers.py for why that is faster.
        view = (scratch(limit + 1) if buffer is None else buffer)[: size + 1]
        # One read normally does: fewer bytes than asked means the end of the file (and
        # the fstat below confirms the size); more than `size` means it grew.
        got = _preadv(fd, [view], 0) if _preadv else 0
        if got < size:  # a short read (network file systems), or Windows: keep reading
            got += read_into(fd, view[got:], got)
        after = os.fstat(fd)
        if got != size or after.st_mtime_ns != before.st_mtime_ns or after.st_size != size:
            raise changed(path)
    finally:
        os.close(fd)
    data = bytes(view[:size])
    digest: str = blake3.blake3(data).hexdigest()
    return digest, data
