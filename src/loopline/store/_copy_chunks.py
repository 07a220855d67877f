"""Chunking a large file into a local store by copying it into a pack first (Linux).

`put_chunked` (_chunks.py) reads a large file into memory, cuts and hashes it there, and
writes the new chunks out again: per GB here, 0.2 s of kernel time for the read and
0.4 s for the write, besides 0.25 s to cut and 0.24 s to hash. In a local store, on
Linux, the kernel can copy the file straight into a new pack (`os.sendfile`, as
`shutil.copyfile` does: 0.28-0.30 s per GB), and the pack, mapped read-only, is cut and
hashed where it lies while the copy goes on, on the other core. A 1 GB `data add` went
from 1.62-1.66x to 1.20x the time of `shutil.copyfile` plus a BLAKE3 hash of the file.

What is stored is what was hashed: both are the pack's bytes. The source is never
mapped (a file truncated meanwhile would kill the process with SIGBUS instead of
raising Conflict); the pack is this call's own temp file, which nothing else truncates
(but `clean_temp(older_than=0)`, which must not run beside writers).

The pack keeps the file at `DATA_OFFSET` (2 MiB, see there), so each chunk lies at that
offset plus its offset in the file. When at least `KEEP_MIN` of the file is new (a first
add), the pack is committed as it is, its index listing only the new chunks; the rest
(chunks stored already, or repeated in the file) stays as unlisted bytes. Otherwise (an
edited file, or a repetitive one) the new chunks go to the ordinary pack writer from
the map, and the copy is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future

from loopline.store import _chunks
from loopline.store._backend import Backend, Blob, StoredFile
from loopline.store._buffers import read_into
from loopline.store._hashing import changed, ensure_unchanged
from loopline.store._local_blobs import LocalBlobs, LocalPackSink
from loopline.store._packs import PACK_HEADER, PackIndex, PackWriter, background, encode_index

# The file's first byte in the pack. The kernel copies into the page cache faster when the
# destination offset is congruent to the source's modulo its large pages (2 MiB): per GB
# here, 0.28-0.30 s of copy time at 2 MiB against 0.35-0.38 s at 4 KiB. The gap before it
# is a hole: it takes no disk space on the file systems Linux stores projects on.
DATA_OFFSET = 2 << 20
KEEP_MIN = 0.9  # keep the copy as the pack when at least this share of the file is new
# sendfile cannot copy between these files: store the file by reading it instead
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})


class _Unsupported(Exception):
    """The kernel cannot copy this file into the pack."""


def copying_backend(backend: Backend) -> LocalBlobs | None:
    """`backend`, if `put_copied` can store into it (a local folder, on Linux)."""
    return backend if isinstance(backend, LocalBlobs) and sys.platform == "linux" else None


def seen_before(fd: int, size: int, writer: PackWriter) -> bool:
    """Whether the file's first chunk is stored already: then the file is most likely an
    edited or touched copy of one stored before, of which little is new. Reading it
    (`put_chunked`) takes about as long (1 GB CSV with one row changed: 477 ms read,
    487 ms copied) but writes nothing, where the copy writes the whole file only to
    drop it. Costs a few ms: the first `CHUNK_MAX` bytes are read, cut and hashed."""
    from pyfastcdc import FastCDC

    head = memoryview(bytearray(min(size, _chunks.CHUNK_MAX)))
    read = read_into(fd, head, 0)
    cutter = FastCDC(_chunks.CHUNK_AVG, min_size=_chunks.CHUNK_MIN, max_size=_chunks.CHUNK_MAX)
    first = _chunks.cut_stable(cutter, head[:read], at_end=read == size)[:1]
    return any(writer.stored(digest.hex()) for digest in _chunks.hash_chunks(head, first))


def put_copied(
    path: str,
    fd: int,
    before: os.stat_result,
    backend: LocalBlobs,
    index: PackIndex,
    writer: PackWriter,
    pool: Executor,
    progress: Callable[[int], None],
) -> StoredFile | None:
    """Copy, cut, hash and store the open file `fd`; None if the kernel cannot copy it
    (then nothing was stored: use `put_chunked`). The caller closes `fd`.

    Raises:
        Conflict: the file changed size or modification time while it was copied.
    """
    size = before.st_size
    sink = backend.new_pack()
    try:
        sink.write([PACK_HEADER])
        mapping = sink.mapped(DATA_OFFSET + size)
        # The copy runs on a helper thread, never held back: its queue has room for every piece.
        copying = background(_copy(path, fd, sink, size), depth=size // _chunks.SEGMENT + 2)
        with contextlib.closing(copying):
            cuts, digests = _cut_and_hash(memoryview(mapping), copying, size, pool, progress)
        _chunks.ensure_at_end(path, fd, size, size)
        ensure_unchanged(path, fd, before)
        chunks = [Blob(d.hex(), length) for d, (_, length) in zip(digests, cuts, strict=True)]
        _store(sink, mapping, chunks, cuts, size, backend, index, writer)
    except _Unsupported:
        sink.abort()
        return None
    except BaseException:
        sink.abort()
        raise
    return StoredFile(_chunks.chunked_file_id(chunks), size, tuple(chunks))


def _cut_and_hash(
    data: memoryview,
    copied_so_far: Iterator[int],
    size: int,
    pool: Executor,
    progress: Callable[[int], None],
) -> tuple[list[tuple[int, int]], list[bytes]]:
    """Cut the file in the pack as the copy fills it (`copied_so_far` says how far it
    got); hash each piece's chunks on `pool`.

    Returns each chunk's `(offset in the file, length)` and BLAKE3 digest, in order.
    """
    from pyfastcdc import FastCDC

    cutter = FastCDC(_chunks.CHUNK_AVG, min_size=_chunks.CHUNK_MIN, max_size=_chunks.CHUNK_MAX)
    file = data[DATA_OFFSET:]
    cuts: list[tuple[int, int]] = []
    hashing: list[Future[list[bytes]]] = []
    start = 0  # the first byte not in a chunk yet
    reported = 0
    for copied in copied_so_far:
        at_end = copied >= size
        piece = _chunks.cut_stable(cutter, file[start:copied], at_end)
        if piece:
            piece = [(start + offset, length) for offset, length in piece]
            start = sum(piece[-1])
            cuts += piece
            hashing.append(pool.submit(_chunks.hash_chunks, file, piece))
        progress(copied - reported)
        reported = copied
        if at_end:
            break
    return cuts, [digest for job in hashing for digest in job.result()]


def _store(
    sink: LocalPackSink,
    mapping: mmap.mmap,
    chunks: list[Blob],
    cuts: list[tuple[int, int]],
    size: int,
    backend: LocalBlobs,
    index: PackIndex,
    writer: PackWriter,
) -> None:
    """Commit the copy as a pack, or hand its new chunks to `writer` (module docstring)."""
    new: dict[str, tuple[int, int]] = {}
    for chunk, (offset, length) in zip(chunks, cuts, strict=True):
        if chunk.hash not in new and not writer.stored(chunk.hash):
            new[chunk.hash] = (DATA_OFFSET + offset, length)
    if sum(length for _, length in new.values()) >= KEEP_MIN * size:
        entries = [(digest, offset, length) for digest, (offset, length) in new.items()]
        sink.commit()
        backend.write_index(sink.pack_id, encode_index(entries))
        index.add(sink.pack_id, entries)
        return
    view = memoryview(mapping)
    for digest, (offset, length) in new.items():
        writer.add(digest, view[offset : offset + length], address=offset)
    writer.after_written(sink.abort)  # the copy goes once the new chunks are written


def _copy(path: str, fd: int, sink: LocalPackSink, size: int) -> Iterator[int]:
    """Copy the file into the pack `SEGMENT` bytes at a time; yield how far it got.

    Raises:
        _Unsupported: the kernel refused the first copy (nothing was copied).
        Conflict: the file ends before the size it had when opened.
    """
    copied = 0
    while copied < size:
        count = min(_chunks.SEGMENT, size - copied)
        try:
            sent = sink.copy_from(fd, copied, count, DATA_OFFSET + copied)
        except OSError as exc:
            if copied == 0 and exc.errno in _UNSUPPORTED:
                raise _Unsupported from exc
            raise
        if not sent:
            raise changed(path)
        copied += sent
        yield copied
