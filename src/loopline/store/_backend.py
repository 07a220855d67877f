"""What an artifact back-end (local folder, S3) provides, and the records it hands back.

`ArtifactStore` (artifacts.py) is the public face; it validates arguments, then talks to
one `Backend`. Both back-ends store loose blobs (`blobs/<h[:2]>/<h[2:]>`) and pack files
(`packs/<id>.pack` + `packs/<id>.idx`, see _packs.py); digests arrive already validated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from loopline.errors import NotFound

if TYPE_CHECKING:
    from loopline.store._buffers import BufferPool


@dataclass(frozen=True)
class Blob:
    """A stored blob: its BLAKE3 hash (64 lowercase hex characters) and size in bytes."""

    hash: str
    size: int


@dataclass(frozen=True)
class StoredFile:
    """A file stored by `ArtifactStore.put_files`: its content id, size and chunks.

    A file below the chunking threshold is one blob and `hash` is the BLAKE3 hash of its
    bytes (what `b3sum` prints); `chunks` is then empty. A larger file is stored as
    content-defined chunks, listed in order in `chunks`, and `hash` is the BLAKE3 hash of
    `b"loopline-chunked-v1\\n"` followed by each chunk's 32-byte digest and 8-byte
    little-endian size: it is computed from the chunk hashes, so the file is read once,
    and it is not the file's `b3sum`.
    """

    hash: str
    size: int
    chunks: tuple[Blob, ...] = ()

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """The blobs that make up the file, in order: its chunks, or itself as one blob."""
        return self.chunks or (Blob(self.hash, self.size),)


@dataclass(frozen=True)
class PackListing:
    """What `packs/` holds: pack ids with their sizes, and the ids that have an `.idx`."""

    packs: dict[str, int]
    indexes: frozenset[str]


@dataclass(frozen=True)
class StoredObject:
    """One file or object as listed: its name under the store root, size and last write.

    `name` is `/`-separated: `blobs/ab/cdef...`, `packs/<id>.pack`, `tmp/<uuid>.part`;
    an unfinished S3 multipart upload is `uploads/<key>#<upload id>`. `mtime` (seconds
    since the epoch) is when it was written or last freshened (see `Backend.touch`).
    """

    name: str
    size: int
    mtime: float


class PackGone(NotFound):
    """A pack listed in an index loaded earlier was removed since (`gc` repacked it):
    reload the indexes and look again."""


def blob_name(digest: str) -> str:
    """A loose blob's name under the store root."""
    return f"blobs/{digest[:2]}/{digest[2:]}"


def pack_name(pack_id: str, suffix: str = "pack") -> str:
    """A pack's (`pack`) or its index's (`idx`) name under the store root."""
    return f"packs/{pack_id}.{suffix}"


class PackSink(Protocol):
    """A pack being written; invisible to readers until `commit` returns."""

    pack_id: str

    def write(self, buffers: Sequence[bytes | memoryview]) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


Progress = Callable[[int], None]
"""Called with the number of bytes just processed (e.g. a progress bar's `update`)."""


class Backend(Protocol):
    """Loose blobs and pack files in one place: a local folder or an S3 prefix."""

    uri: str
    errors: tuple[type[BaseException], ...]
    unavailable_hint: str
    span_gap: int  # reading this many unneeded bytes costs less than one more request
    span_max: int  # the most bytes of a pack read at once

    def location(self, digest: str) -> str: ...
    def exists(self, digest: str) -> bool: ...
    def loose_lookup(self, expected: int) -> Callable[[str], bool]:
        """A membership test for loose blobs, fit for about `expected` lookups."""
        ...

    def put_file(self, source: Path) -> Blob: ...
    def put_bytes(self, digest: str, data: bytes) -> None: ...
    def open_blob(self, digest: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def list_objects(self, folder: str) -> list[StoredObject]:
        """Every object under `folder` (`blobs`, `packs`, `tmp`, `quarantine`), any depth;
        `uploads` lists unfinished multipart uploads (S3; none locally)."""
        ...

    def touch(self, name: str) -> bool:
        """Set an object's `mtime` to now, so that `gc` counts it as just written.

        Writers call it on content they reuse instead of storing again: a `gc` running
        meanwhile then leaves it alone. False if the object is gone.
        """
        ...

    def remove(self, name: str, not_after: float | None = None) -> bool:
        """Remove an object (abort an upload); with `not_after`, only if it was last
        written or touched at or before that time (checked just before removing).
        Whether it was removed."""
        ...

    def move(self, name: str, new_name: str) -> None: ...

    def list_packs(self) -> PackListing: ...
    def read_indexes(self, pack_ids: Sequence[str]) -> dict[str, bytes]:
        """The `.idx` bytes of each pack, leaving out those deleted meanwhile."""
        ...

    def write_index(self, pack_id: str, data: bytes) -> None: ...
    def new_pack(self) -> PackSink: ...
    def read_spans(
        self, pack_id: str, spans: Sequence[tuple[int, int]], buffers: BufferPool | None = None
    ) -> Iterator[bytes | memoryview]:
        """The bytes of each `(start, end)` span of a pack, in order (shorter if truncated).

        A back-end may read into a buffer from `buffers`; the caller gives it back
        once done with that span.
        """
        ...

    def pack_location(self, pack_id: str) -> str: ...
