"""Pack files: many blobs appended into one object, found through a small binary index.

Writing 20,000 small files as 20,000 loose blobs costs about three times as long as
hashing them (DESIGN.md, measured lessons), so `put_files` appends blobs into packs of
about `PACK_TARGET` bytes, as git and restic do.

    packs/<id>.pack   16-byte header (magic `LLPACK\0` + format version byte 1 + zero
                      padding), then the blobs' bytes, no framing; a large blob may be
                      preceded by up to 63 zero bytes so that it starts at the same
                      offset modulo 64 as in its source file (see PackWriter.add); a
                      pack holding one large file copied whole has a hole up to
                      2 MiB, then the file (_copy_chunks.py), and bytes no entry lists
    packs/<id>.idx    24-byte header (magic `LLINDEX\0`, u32 version 1, u32 reserved,
                      u64 entry count), the entries sorted by digest (32-byte digest,
                      u64 offset in the pack, u64 length: 48 bytes each), then the
                      32-byte BLAKE3 hash of everything before it; integers little-endian

A pack's `.idx` is touched whenever a writer reuses one of its blobs, so the later of the
two files' times says when the pack was last written or relied on (`gc` keeps packs
used within its grace period).

A pack is written under a temporary name and moved into place (local), or uploaded to
its final key (S3, where an object appears only once its upload completes); its `.idx`
is written only after the pack is complete. Readers trust only blobs listed in an `.idx`
whose pack exists, so a writer killed at any point leaves no visible blob, only a temp
file or an orphan pack that `clean_temp` removes.

An `.idx` that is truncated, damaged or of an unknown version is ignored with a logged
warning rather than failing the whole store: its blobs then count as missing, so the
next `put_files` or `copy_to` of the same data stores them again (self-repair), and a
read of them raises NotFound whose hint mentions the damaged index.
"""

from __future__ import annotations

import itertools
import logging
import queue
import struct
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import NamedTuple, TypeVar

import blake3

from loopline.store._backend import Backend, PackSink, blob_name, pack_name
from loopline.store._buffers import ALIGNMENT

logger = logging.getLogger(__name__)
T = TypeVar("T")

PACK_TARGET = 64 << 20  # roll over to a new pack once this many bytes are in one
PACK_HEADER = b"LLPACK\x00\x01" + bytes(8)  # magic + format version 1, padded to 16 bytes
INDEX_MAGIC = b"LLINDEX\x00"
INDEX_VERSION = 1
_HEADER = struct.Struct("<8sIIQ")  # magic, version, reserved, entry count
_ENTRY = struct.Struct("<32sQQ")  # digest, offset in the pack, length
_TRAILER = 32  # BLAKE3 of header + entries
_BATCH = 4 << 20  # bytes handed to the I/O thread at once
_WRITE_MAX = 256 << 10  # bytes per `PackSink.write` call (see _write_in_pieces)
_PADDING = memoryview(bytes(ALIGNMENT))
_IOV_MAX = 1024  # buffers per writev (POSIX guarantees at least 16; Linux allows 1024)


class Location(NamedTuple):
    """Where a packed blob lives: pack id, byte offset in the pack, length."""

    pack_id: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        """The offset just past the blob."""
        return self.offset + self.length


class DamagedIndex(ValueError):
    """An `.idx` that does not parse; the message says why."""


def encode_index(entries: Sequence[tuple[str, int, int]]) -> bytes:
    """The `.idx` bytes for `(digest, offset, length)` entries."""
    parts = [_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, 0, len(entries))]
    parts += [
        _ENTRY.pack(bytes.fromhex(d), offset, length) for d, offset, length in sorted(entries)
    ]
    body = b"".join(parts)
    digest: bytes = blake3.blake3(body).digest()
    return body + digest


def decode_index(data: bytes, pack_size: int) -> list[tuple[str, int, int]]:
    """Parse `.idx` bytes, checking them against the pack's size.

    Raises:
        DamagedIndex: truncated, wrong magic or version, bad checksum, or an entry
            that points outside the pack.
    """
    if len(data) < _HEADER.size + _TRAILER:
        raise DamagedIndex(f"truncated: {len(data)} bytes")
    magic, version, _, count = _HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise DamagedIndex("not a loopline pack index")
    if version != INDEX_VERSION:
        raise DamagedIndex(f"format version {version}; this loopline reads {INDEX_VERSION}")
    if len(data) != _HEADER.size + count * _ENTRY.size + _TRAILER:
        raise DamagedIndex(f"{len(data)} bytes for {count} entries")
    body = memoryview(data)[:-_TRAILER]
    if blake3.blake3(body).digest() != data[-_TRAILER:]:
        raise DamagedIndex("checksum mismatch")
    entries = [
        (digest.hex(), offset, length)
        for digest, offset, length in _ENTRY.iter_unpack(body[_HEADER.size :])
    ]
    if any(
        offset < len(PACK_HEADER) or offset + length > pack_size for _, offset, length in entries
    ):
        raise DamagedIndex(f"an entry points outside the pack ({pack_size} bytes)")
    return entries


class PackIndex:
    """Which pack holds which blob, for one store: loaded lazily from every `.idx`.

    `get` answers from memory; `refresh` loads the indexes other writers added since.
    Readers call `find`, which refreshes once on a miss.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._entries: dict[str, Location] = {}
        self._read: set[str] = set()  # pack ids whose .idx was loaded or found damaged
        self._loaded = False
        self.damaged: set[str] = set()

    def get(self, digest: str) -> Location | None:
        """Where `digest` is packed, as far as this process knows."""
        if not self._loaded:
            self.refresh()
        return self._entries.get(digest)

    def find(self, digest: str) -> Location | None:
        """Like `get`, but on a miss look for packs added by others first."""
        loaded = self._loaded
        found = self.get(digest)
        if found is None and loaded:
            self.refresh()
            found = self._entries.get(digest)
        return found

    def known(self) -> Mapping[str, Location]:
        """Every blob location loaded so far: a live, read-only view (fast membership tests)."""
        if not self._loaded:
            self.refresh()
        return self._entries

    def refresh(self) -> None:
        """Load the `.idx` of every pack not loaded yet; start over if a pack loaded
        before is gone (`gc` removed or repacked it: its blobs may live elsewhere now)."""
        with self._lock:
            listing = self._backend.list_packs()
            if not self._read <= listing.packs.keys():
                self._entries.clear()
                self._read.clear()
                self.damaged.clear()
            new = sorted((listing.indexes & listing.packs.keys()) - self._read)
            for pack_id, data in self._backend.read_indexes(new).items():
                self._read.add(pack_id)
                try:
                    entries = decode_index(data, listing.packs[pack_id])
                except DamagedIndex as exc:
                    self.damaged.add(pack_id)
                    logger.warning(
                        "ignoring damaged pack index %s: %s; its blobs count as missing",
                        self._backend.pack_location(pack_id).removesuffix(".pack") + ".idx",
                        exc,
                    )
                    continue
                self._add(pack_id, entries)
            self._loaded = True

    def reload(self) -> None:
        """Forget every index and load them all again (after one was rewritten)."""
        with self._lock:
            self._entries.clear()
            self._read.clear()
            self.damaged.clear()
        self.refresh()

    def add(self, pack_id: str, entries: Iterable[tuple[str, int, int]]) -> None:
        """Record a pack this process has just committed."""
        with self._lock:
            self._read.add(pack_id)
            self._add(pack_id, entries)

    def _add(self, pack_id: str, entries: Iterable[tuple[str, int, int]]) -> None:
        for digest, offset, length in entries:
            self._entries.setdefault(digest, Location(pack_id, offset, length))

    def damage_hint(self) -> str | None:
        """A hint for NotFound when some indexes could not be read."""
        if not self.damaged:
            return None
        return (
            f"{len(self.damaged)} pack index(es) in this store are damaged and were ignored "
            "(see the logged warnings); storing the data again repairs it"
        )


class PackWriter:
    """Appends new blobs to fresh packs of one store, for one `put_files`/`copy_to` call.

    `add` runs in the caller's thread and only does bookkeeping (deduplication, offsets,
    index entries); the bytes go to the back-end from one I/O thread in batches, so that
    hashing and writing overlap. Use it as a context manager: leaving normally commits
    the last pack, leaving by an exception discards it (packs already rolled over stay:
    they are complete and valid).
    """

    def __init__(
        self,
        backend: Backend,
        index: PackIndex,
        is_loose: Callable[[str], bool],
        target: int | None = None,
    ) -> None:
        self._backend = backend
        self._index = index
        self._is_loose = is_loose
        self._target = PACK_TARGET if target is None else target
        self._added: set[str] = set()
        self._known = index.known()
        self._touched: dict[str, bool] = {}  # pack id -> still there when touched
        self._sink: PackSink | None = None
        self._size = 0
        self._entries: list[tuple[str, int, int]] = []
        self._batch: list[bytes | memoryview] = []
        self._batch_size = 0
        self._io = _IOThread()
        self.bytes_added = 0

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    def add(self, digest: str, data: bytes | memoryview, address: int | None = None) -> bool:
        """Append a blob unless it is stored already; False if it was skipped.

        `data` must stay unchanged until the I/O thread has written it (see
        `after_written`); bytes objects always do. `address`, if given, is where `data`
        sits in memory, modulo `ALIGNMENT` at least: the blob then goes at a pack offset
        congruent to it, after up to 63 bytes of padding, because the kernel copies
        between relatively misaligned addresses four times slower (see _buffers.py).
        """
        if self.stored(digest):
            return False
        length = len(data)
        if self._entries and self._size + length > self._target:
            self._roll_over()
        if self._sink is None:
            self._sink = self._backend.new_pack()
            self._size = len(PACK_HEADER)
            self._batch.append(PACK_HEADER)
        if address is not None and (padding := (address - self._size) % ALIGNMENT):
            self._batch.append(_PADDING[:padding])
            self._size += padding
            self._batch_size += padding
        self._entries.append((digest, self._size, length))
        self._added.add(digest)
        self._size += length
        self.bytes_added += length
        self._batch.append(data)
        self._batch_size += length
        if self._batch_size >= _BATCH or len(self._batch) >= _IOV_MAX:
            self._send_batch()
        return True

    def stored(self, digest: str) -> bool:
        """Whether `digest` is in the store already, or added by this writer.

        Content found in another pack or loose is touched (once per pack), so that a
        `gc` running meanwhile keeps it; content whose pack or blob has just been
        removed counts as not stored, and is written again.
        """
        if digest in self._added:
            return True
        where = self._known.get(digest)
        if where is not None:
            fresh = self._touched.get(where.pack_id)
            if fresh is None:
                fresh = self._touched[where.pack_id] = self._backend.touch(
                    pack_name(where.pack_id, "idx")
                )
            return fresh
        return self._is_loose(digest) and self._backend.touch(blob_name(digest))

    def after_written(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the I/O thread once everything added so far is written."""
        self._send_batch()
        self._io.submit(callback, always=True)

    def close(self) -> None:
        """Commit the open pack and wait for all writes; re-raise an I/O thread error."""
        try:
            if self._sink is not None:
                self._roll_over()
        except BaseException:
            self.abort()
            raise
        self._io.stop()
        self._io.raise_error()

    def abort(self) -> None:
        """Discard the open pack and stop the I/O thread."""
        sink, self._sink = self._sink, None
        self._batch.clear()
        if sink is not None:
            self._io.submit(sink.abort, always=True)
        self._io.stop()

    def _send_batch(self) -> None:
        if self._batch:
            sink, batch = self._sink, self._batch
            assert sink is not None
            self._io.submit(lambda: _write_in_pieces(sink, batch))
            self._batch, self._batch_size = [], 0
        self._io.raise_error()

    def _roll_over(self) -> None:
        self._send_batch()
        sink, entries = self._sink, self._entries
        assert sink is not None
        self._sink, self._entries, self._size = None, [], 0
        self._io.submit(lambda: self._commit(sink, entries))
        self._io.submit(sink.abort, only_after_error=True)

    def _commit(self, sink: PackSink, entries: list[tuple[str, int, int]]) -> None:
        sink.commit()
        self._backend.write_index(sink.pack_id, encode_index(entries))
        self._index.add(sink.pack_id, entries)
        logger.debug(
            "committed pack %s: %d blobs", self._backend.pack_location(sink.pack_id), len(entries)
        )


def _write_in_pieces(sink: PackSink, batch: Sequence[bytes | memoryview]) -> None:
    """Hand `batch` to the sink in writes of at most `_WRITE_MAX` bytes.

    The kernel sizes a file's page-cache folios after each write call, and on this VM
    (ext4, Linux 6.18, free memory reported back to the hypervisor) large folios most
    likely land on memory that the host must fault in again. Measured on `data add` of a 1 GB
    file, runs taking turns with the benchmark's reference: with 4 MiB write calls,
    1.5-2.1 s in 13 runs of 15 (0.57 s in the other two); with 256 KiB calls, 0.51-0.70 s
    in all 21 runs (128 KiB: 0.60-0.74 s; 512 KiB: 0.48-1.1 s). The extra calls cost
    ~10 ms per GB, on the I/O thread.
    """
    group: list[bytes | memoryview] = []
    room = _WRITE_MAX  # bytes the group can still take
    for buffer in batch:
        pieces: Sequence[bytes | memoryview] = (buffer,)  # most small blobs: no slicing
        if len(buffer) > room:  # cut where the groups end
            view = memoryview(buffer)
            cuts = [0, *range(room, len(view), _WRITE_MAX), len(view)]
            pieces = [view[start:end] for start, end in itertools.pairwise(cuts)]
        for piece in pieces:
            group.append(piece)
            room -= len(piece)
            if not room:
                sink.write(group)
                group, room = [], _WRITE_MAX
    if group:
        sink.write(group)


class _IOThread:
    """One background thread running jobs in order; after a failure it only runs the
    jobs marked `always` (releasing buffers, aborting sinks), so waiters never hang."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], object], bool, bool] | None] = queue.Queue(16)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(
        self, job: Callable[[], object], *, always: bool = False, only_after_error: bool = False
    ) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="loopline-packs", daemon=True)
            self._thread.start()
        self._jobs.put((job, always, only_after_error))

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, always, only_after_error = item
            failed = self._error is not None
            if (failed and not (always or only_after_error)) or (only_after_error and not failed):
                continue
            try:
                job()
            except BaseException as exc:
                if self._error is None:
                    self._error = exc
                else:
                    logger.debug("while recovering from an error: %r", exc)


def plan_spans(
    blobs: Iterable[tuple[int, int, str]], max_gap: int, max_span: int
) -> list[tuple[int, int, list[tuple[int, int, str]]]]:
    """Group `(offset, length, digest)` blobs of one pack into few `(start, end, blobs)` reads.

    Blobs closer than `max_gap` share one read unless it would exceed `max_span` (a
    single longer blob is read alone).
    """
    spans: list[tuple[int, int, list[tuple[int, int, str]]]] = []
    for blob in sorted(blobs):
        offset, length, _ = blob
        end = offset + length
        if spans and offset - spans[-1][1] <= max_gap and end - spans[-1][0] <= max_span:
            start, last_end, members = spans[-1]
            members.append(blob)
            spans[-1] = (start, max(last_end, end), members)
        else:
            spans.append((offset, end, [blob]))
    return spans


def background(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """Iterate `items` on a helper thread, `depth` ahead, so that reading overlaps use."""
    ahead: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: tuple[bool, T | BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
            offer((False, None))
        except BaseException as exc:
            offer((False, exc))

    thread = threading.Thread(target=produce, name="loopline-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, item = ahead.get()
            if isinstance(item, BaseException):
                raise item
            if not more:
                return
            yield item  # type: ignore[misc]  # T, as `more` says
    finally:
        stop.set()
        thread.join()
