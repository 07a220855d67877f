"""Content-defined chunking of large files (FastCDC), so that an edit stores few new bytes.

Files of `CHUNKED_MIN` bytes or more are cut by FastCDC (pyfastcdc) into chunks of
1 to 4 MiB, about 1.5 MiB on average. A cut point depends only on the bytes before it
in its chunk, so a one-row edit in a 1 GB CSV changes one or two chunks and the next
`put_files` stores at most 8 MiB (typically 2-3 MiB), where a file-per-blob store (DVC)
uploads the whole file again.

Why min = avg = 1 MiB: FastCDC skips the first `min_size` bytes of every chunk without
reading them, and with `min_size == avg_size` it scans the rest with the mask that
cuts soonest. Measured on 1 GB here: 0.19 s to cut, against 0.5 s for 256 KiB / 1 MiB /
4 MiB, for chunks 25% larger on average. Memory bandwidth is this machine's limit:
every pass over the data (read, cut, hash, write) costs about 0.3-0.5 s per GB.

A chunked file's id is BLAKE3 over `CHUNKED_ID_PREFIX` and each chunk's 32-byte digest and
8-byte little-endian size. It is not the file's b3sum: computing it from the chunk
digests avoids hashing every byte a second time, and the prefix keeps it from ever
being mistaken for the hash of some blob's content.

The file is read in `SEGMENT`-byte pieces into reused page-aligned buffers (_buffers.py):
the caller's thread reads and cuts (FastCDC releases the GIL), a worker thread hashes
the chunks of the previous piece, and the pack writer's I/O thread writes new chunks
straight from the buffer that was hashed, so the bytes stored are always the bytes
hashed (mmap would save the read's copy, but a file truncated meanwhile would kill the
process with SIGBUS instead of raising Conflict).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Protocol

import blake3

from loopline.store._backend import Blob, StoredFile
from loopline.store._buffers import BufferPool, read_into
from loopline.store._hashing import changed, ensure_unchanged

CHUNKED_MIN = 4 << 20  # files at least this large are chunked; smaller ones are one blob
CHUNK_MIN = 1 << 20
CHUNK_AVG = 1 << 20
CHUNK_MAX = 4 << 20
CHUNKED_ID_PREFIX = b"loopline-chunked-v1\n"
SEGMENT = 16 << 20  # bytes read from a large file at once
_BUFFERS = 4
_spare: list[BufferPool] = []  # the pool kept between calls (see keep_chunk_buffers)
_spare_lock = threading.Lock()


class ChunkSink(Protocol):
    """Where `put_chunked` sends chunks: a PackWriter, or an upload to a server."""

    def add(self, digest: str, data: bytes | memoryview, address: int | None = None) -> bool: ...
    def after_written(self, callback: Callable[[], None]) -> None: ...


def chunked_file_id(chunks: Sequence[Blob]) -> str:
    """The id of a file stored as `chunks` (see the module docstring)."""
    hasher = blake3.blake3(CHUNKED_ID_PREFIX)
    for chunk in chunks:
        hasher.update(bytes.fromhex(chunk.hash) + chunk.size.to_bytes(8, "little"))
    digest: str = hasher.hexdigest()
    return digest


def chunk_buffers() -> BufferPool:
    """Buffers for `put_chunked`: a piece of `SEGMENT` bytes after room for a carry-over.

    Four: one being read and cut, one being hashed, two being written. More would only
    let reading run further ahead of writing, and fresh memory is slow to touch: the
    pool that the last call gave back with `keep_chunk_buffers` is handed out again.
    """
    size = CHUNK_MAX + SEGMENT
    with _spare_lock:
        if _spare and _spare[-1].size == size:  # not if SEGMENT changed since (tests do)
            return _spare.pop()
    return BufferPool(size, limit=_BUFFERS)


def keep_chunk_buffers(buffers: BufferPool) -> None:
    """Keep `buffers` for the next call; only once every buffer taken was given back.

    New buffers must be touched: the reads of a 1 GB `put_files` took 0.3-0.55 s into
    new buffers against 0.16 s into reused ones. So one pool is kept between calls, and
    only one (concurrent calls make their own): at most 80 MB stays allocated in the
    process. A pool missing a buffer would hang the next call, so callers keep it only
    after a call that ended normally, once the pack writer has written (and given
    back) everything.
    """
    with _spare_lock:
        _spare[:] = [buffers]


def put_chunked(
    path: str,
    fd: int,
    before: os.stat_result,
    writer: ChunkSink,
    pool: Executor | None,
    buffers: BufferPool,
    progress: Callable[[int], None],
) -> StoredFile:
    """Cut, hash and store the open file `fd`; the caller closes it.

    Raises:
        Conflict: the file changed size or modification time while it was read.
    """
    from pyfastcdc import FastCDC

    cutter = FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX)
    size = before.st_size
    chunks: list[Blob] = []
    hashing: deque[tuple[Future[list[bytes]] | list[bytes], memoryview, int, list[tuple[int, int]]]]
    hashing = deque()
    carry: memoryview = memoryview(b"")
    offset = 0  # in the file, of the first byte not read yet
    while True:
        # The carried-over tail goes just before CHUNK_MAX, so that the read lands on an
        # aligned address (see _buffers.py).
        buffer = buffers.take()
        first = CHUNK_MAX - len(carry)
        buffer[first:CHUNK_MAX] = carry
        wanted = min(len(buffer) - CHUNK_MAX, size - offset)
        read = read_into(fd, buffer[CHUNK_MAX : CHUNK_MAX + wanted], offset)
        offset += read
        view = buffer[first : CHUNK_MAX + read]
        valid = len(view)
        at_end = offset >= size or read < wanted
        if at_end:
            ensure_at_end(path, fd, offset, size)
        cuts = cut_stable(cutter, view[:valid], at_end)
        carry = view[sum(cuts[-1]) if cuts else 0 : valid] if not at_end else memoryview(b"")
        job = pool.submit(hash_chunks, view, cuts) if pool else hash_chunks(view, cuts)
        hashing.append((job, view, first, cuts))
        progress(read)
        # Store the previous piece's chunks only now: its tail was just copied out.
        while len(hashing) > (0 if at_end else 1):
            _store(hashing.popleft(), writer, buffers, chunks)
        if at_end:
            break
    ensure_unchanged(path, fd, before)
    return StoredFile(chunked_file_id(chunks), size, tuple(chunks))


def ensure_at_end(path: str, fd: int, offset: int, size: int) -> None:
    """A file that ends before or after the size it had when opened has changed."""
    if offset != size or read_into(fd, memoryview(bytearray(1)), size):
        raise changed(path)


def cut_stable(cutter: object, data: memoryview, at_end: bool) -> list[tuple[int, int]]:
    """`(offset, length)` of each chunk in `data` whose cut point cannot move.

    A cut point depends on the `CHUNK_MAX` bytes from its chunk's start, so unless the
    file ends here, the chunk starting less than `CHUNK_MAX` before the end of `data`
    is cut again with the next piece.
    """
    cuts = []
    for chunk in cutter.cut_buf(data):  # type: ignore[attr-defined]
        if not at_end and len(data) - chunk.offset < CHUNK_MAX:
            break
        cuts.append((chunk.offset, chunk.length))
    return cuts


def hash_chunks(view: memoryview, cuts: list[tuple[int, int]]) -> list[bytes]:
    return [blake3.blake3(view[start : start + length]).digest() for start, length in cuts]


def _store(
    item: tuple[Future[list[bytes]] | list[bytes], memoryview, int, list[tuple[int, int]]],
    writer: ChunkSink,
    buffers: BufferPool,
    chunks: list[Blob],
) -> None:
    """Add a piece's chunks to the pack; `first` is where `view` starts in its buffer."""
    job, view, first, cuts = item
    digests = job.result() if isinstance(job, Future) else job
    for digest, (start, length) in zip(digests, cuts, strict=True):
        chunk = Blob(digest.hex(), length)
        chunks.append(chunk)
        writer.add(chunk.hash, view[start : start + length], address=first + start)
    writer.after_written(lambda: buffers.give_back(view))
