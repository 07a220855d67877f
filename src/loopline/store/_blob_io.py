"""One blob read as a stream, and blobs received from elsewhere stored into packs.

What the platform server needs to serve blobs over HTTP (server/api/blobs.py) and what
`copy_to` needs to push blobs to a server: `BlobReader` knows a blob's size before any
byte is read (for `Content-Length` and `Range`) and streams it verified, and
`put_blobs` stores blobs that arrived with their digest, after checking each one.

A streamed read holds back its last piece until the whole blob has hashed to its
digest: a reader that gets every byte has got verified bytes, and a corrupt blob ends
in CorruptedData before its end, which an HTTP server turns into a cut connection
(a `Content-Length` response that stops short), never into a complete wrong answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import blake3

from loopline.errors import CorruptedData, InvalidInput, NotFound
from loopline.store._arguments import check_digest
from loopline.store._backend import Backend, PackGone
from loopline.store._hashing import CHUNK, hash_bytes, verify
from loopline.store._packs import Location, PackIndex, PackWriter


class BlobReader:
    """A stored blob about to be read: its digest and size, and its bytes on demand."""

    def __init__(
        self, backend: Backend, index: PackIndex, digest: str, where: Location | None, size: int
    ) -> None:
        self.digest = digest
        self.size = size
        self._backend = backend
        self._index = index
        self._where = where

    @property
    def packed(self) -> bool:
        """Whether the blob lives in a pack (then it is small, and read whole)."""
        return self._where is not None

    def read(self) -> bytes:
        """The whole blob, verified.

        Raises:
            NotFound: it was removed since it was found.
            CorruptedData: the stored bytes no longer hash to the digest.
        """
        if self._where is None:
            with self._backend.open_blob(self.digest) as blob:
                data = blob.read()
            verify(self.digest, hash_bytes(data), self._backend.location(self.digest))
            return data
        try:
            return self._read_packed(self._where)
        except PackGone:  # gc repacked it since: look it up again
            self._index.refresh()
            where = self._index.get(self.digest)
            if where is None:
                raise NotFound(
                    f"no blob {self.digest} in artifact store {self._backend.uri}"
                ) from None
            return self._read_packed(where)

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes `start` to `end` (default: the end) in pieces, verified as they are read.

        The bytes before `start` are read and hashed too, and the last piece is yielded
        only once the whole blob has been verified (see the module docstring).

        Raises:
            CorruptedData: before the last piece, if the blob does not hash to its digest.
        """
        end = self.size if end is None else end
        if self._where is not None:
            yield self.read()[start:end]
            return
        hasher = blake3.blake3()
        held = b""
        offset = 0
        with self._backend.open_blob(self.digest) as blob:
            while piece := blob.read(CHUNK):
                hasher.update(piece)
                wanted = piece[max(0, start - offset) : max(0, end - offset)]
                offset += len(piece)
                if wanted:
                    if held:
                        yield held
                    held = wanted
        location = self._backend.location(self.digest)
        if offset != self.size:
            raise CorruptedData(f"blob {self.digest} at {location} changed size while read")
        verify(self.digest, hasher.hexdigest(), location)
        if held:
            yield held

    def _read_packed(self, where: Location) -> bytes:
        [read] = self._backend.read_spans(where.pack_id, [(where.offset, where.end)])
        data = read if isinstance(read, bytes) else bytes(read)
        location = f"{self._backend.pack_location(where.pack_id)} at offset {where.offset}"
        if len(data) != where.length:
            raise CorruptedData(f"blob {self.digest} at {location} is truncated")
        verify(self.digest, hash_bytes(data), location)
        return data


def open_blob(backend: Backend, index: PackIndex, digest: str) -> BlobReader:
    """A reader of a stored blob, loose or packed.

    Raises:
        NotFound: no such blob.
    """
    where = index.get(digest)
    if where is None:
        size = _loose_size(backend, digest)
        if size is not None:
            return BlobReader(backend, index, digest, None, size)
        where = index.find(digest)
        if where is None:
            raise NotFound(f"no blob {digest} in artifact store {backend.uri}")
    return BlobReader(backend, index, digest, where, where.length)


def _loose_size(backend: Backend, digest: str) -> int | None:
    with contextlib.suppress(NotFound), backend.open_blob(digest) as blob:
        return _size(blob)
    return None


def _size(blob: BinaryIO) -> int:
    return blob.seek(0, 2)


def put_blobs(backend: Backend, index: PackIndex, blobs: Iterable[tuple[str, bytes]]) -> int:
    """Store `(digest, content)` pairs into new packs, each checked against its digest
    before it is added; the bytes written (content stored already is skipped).

    Raises:
        InvalidInput: a malformed digest, or content that does not hash to its digest;
            the pack being written is then discarded.
    """
    index.refresh()
    with PackWriter(backend, index, backend.loose_lookup(1024)) as writer:
        for item in blobs:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)):
                raise InvalidInput(f"put_blobs expects (digest, bytes) pairs, got {item!r:.80}")
            digest, data = check_digest(item[0]), item[1]
            actual = hash_bytes(data)
            if actual != digest:
                raise InvalidInput(
                    f"blob {digest} was sent with content that hashes to {actual}",
                    hint="send each blob's exact bytes under its BLAKE3 digest",
                )
            writer.add(digest, data)
    return writer.bytes_added
