"""`ArtifactStore.copy_to`: copy blobs one store has into another store's new packs.

Packed blobs are read with few coalesced reads (_get_files.py); loose blobs up to
`COPY_PACKED_MAX` are packed too, larger ones are copied as loose blobs through a temp
file, so that no large blob is ever held in memory. Every blob is verified as it is
read here. A server's store (an `HttpArtifactStore`) receives them through its own
upload path (`receive`, in _http_blobs.py).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.errors import CorruptedData
from loopline.store._backend import Progress
from loopline.store._hashing import hash_bytes, verify
from loopline.store._packs import PackWriter

if TYPE_CHECKING:
    from loopline.store.artifacts import ArtifactStore

COPY_PACKED_MAX = 16 << 20  # loose blobs up to this size are packed, larger ones copied


def copy_blobs(
    source: ArtifactStore, other: ArtifactStore, digests: list[str], report: Progress
) -> int:
    """Copy `digests` (all stored in `source`) into `other`; the bytes copied."""
    from loopline.store import _get_files

    backend = source._backend
    packed, loose = _get_files.locate(
        backend, source._index, dict.fromkeys(digests), lambda d: f"copy to {other.uri}"
    )
    copied = 0
    with (
        PackWriter(other._backend, other._index, lambda digest: False) as writer,
        contextlib.closing(_get_files.read_packed(backend, packed)) as blobs,
    ):
        for digest, where, data in blobs:
            location = f"{backend.pack_location(where.pack_id)} at offset {where.offset}"
            if len(data) != where.length:
                raise CorruptedData(f"blob {digest} at {location} is truncated")
            _get_files.verify_blob(digest, data, f"blob {digest} at {location}")
            writer.add(digest, bytes(data))
            report(len(data))
        for digest in loose:
            copied += _copy_loose_blob(source, digest, other, writer, report)
    return copied + writer.bytes_added


def _copy_loose_blob(
    source: ArtifactStore, digest: str, other: ArtifactStore, writer: PackWriter, report: Progress
) -> int:
    backend = source._backend
    with backend.open_blob(digest) as blob:
        size = blob.seek(0, os.SEEK_END)
        if size <= COPY_PACKED_MAX:
            blob.seek(0)
            data = blob.read()
            verify(digest, hash_bytes(data), backend.location(digest))
            writer.add(digest, data)
            report(size)
            return 0
    with tempfile.TemporaryDirectory(prefix="loopline-copy-") as folder:
        temp = Path(folder, digest)
        source.get_file(digest, temp)
        other._backend.put_file(temp)
    report(size)
    return size
