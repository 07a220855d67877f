"""The local-folder back-end: loose blobs, pack files and temp files under one folder.

Every file appears under its final name only when complete: bytes go to `tmp/<uuid>.part`
and `os.replace` moves them into place, so a writer killed mid-write leaves only the
`.part` (`clean_temp` removes it). No fsync: see artifacts.py. Content reused instead
of stored again is touched (its mtime set to now), so that a concurrent `gc` keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from loopline.errors import NotFound
from loopline.store._backend import Blob, PackGone, PackListing, StoredObject, blob_name
from loopline.store._buffers import ALIGNMENT, BufferPool, read_into
from loopline.store._hashing import copy_hashing, ensure_unchanged, open_source

logger = logging.getLogger(__name__)

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_IOV_MAX = 1024


class LocalBlobs:
    """Blobs in a local folder: temp file, then `os.replace` into the final name."""

    errors: tuple[type[BaseException], ...] = (OSError,)
    unavailable_hint = "check that the folder exists and that you can write to it"
    span_gap = 256 << 10  # a pread costs about as much as copying this many bytes
    span_max = 16 << 20

    def __init__(self, root: Path) -> None:
        self._root = root.expanduser().absolute()
        self.uri = str(self._root)

    def location(self, digest: str) -> str:
        return str(self._blob_path(digest))

    def exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def loose_lookup(self, expected: int) -> Callable[[str], bool]:
        blobs = self._root / "blobs"
        if not blobs.is_dir():  # the usual case for a data-only store: skip a stat per blob
            return lambda digest: False
        prefix = str(blobs)
        return lambda digest: os.path.isfile(f"{prefix}/{digest[:2]}/{digest[2:]}")

    def put_file(self, source: Path) -> Blob:
        with open_source(source) as (file, before):
            temp = self._new_temp()
            try:
                with open(temp, "xb") as out:
                    digest = copy_hashing(file, out)
                ensure_unchanged(source, file.fileno(), before)
                self._publish(temp, digest, before.st_size)
            finally:
                temp.unlink(missing_ok=True)
        return Blob(digest, before.st_size)

    def put_bytes(self, digest: str, data: bytes) -> None:
        if self._stored_size(digest) == len(data) and self.touch(blob_name(digest)):
            return
        temp = self._new_temp()
        try:
            temp.write_bytes(data)
            self._publish(temp, digest, len(data))
        finally:
            temp.unlink(missing_ok=True)

    def adopt(self, complete: Path, digest: str, size: int) -> None:
        """Move `complete`, a file already verified as blob `digest` and on this store's
        file system (a server's finished upload, under `tmp/`), into place: no copy."""
        self._publish(complete, digest, size)

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BinaryIO]:
        try:
            file = open(self._blob_path(digest), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {digest} in artifact store {self.uri}") from exc
        with file:
            yield file

    def list_objects(self, folder: str) -> list[StoredObject]:
        found = []
        for top, dirs, names in os.walk(self._root / folder):
            dirs.sort()
            for name in names:
                path = os.path.join(top, name)
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    st = os.stat(path)
                    relative = Path(path).relative_to(self._root).as_posix()
                    found.append(StoredObject(relative, st.st_size, st.st_mtime))
        return found

    def touch(self, name: str) -> bool:
        try:
            os.utime(self._root / name)
        except FileNotFoundError:
            return False
        except PermissionError:  # another user's file in a shared store: still there
            logger.debug("cannot touch %s in %s", name, self.uri)
        return True

    def remove(self, name: str, not_after: float | None = None) -> bool:
        path = self._root / name
        try:
            if not_after is not None and path.stat().st_mtime > not_after:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def move(self, name: str, new_name: str) -> None:
        target = self._root / new_name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._root / name, target)

    def list_packs(self) -> PackListing:
        packs: dict[str, int] = {}
        indexes: set[str] = set()
        try:
            entries = os.scandir(self._root / "packs")
        except FileNotFoundError:
            return PackListing(packs, frozenset())
        with entries:
            for entry in entries:
                stem, _, suffix = entry.name.rpartition(".")
                if suffix == "idx":
                    indexes.add(stem)
                elif suffix == "pack":
                    with contextlib.suppress(FileNotFoundError):
                        packs[stem] = entry.stat().st_size
        return PackListing(packs, frozenset(indexes))

    def read_indexes(self, pack_ids: Sequence[str]) -> dict[str, bytes]:
        found = {}
        for pack_id in pack_ids:
            with contextlib.suppress(FileNotFoundError):
                found[pack_id] = (self._root / "packs" / f"{pack_id}.idx").read_bytes()
        return found

    def write_index(self, pack_id: str, data: bytes) -> None:
        temp = self._new_temp()
        try:
            temp.write_bytes(data)
            os.replace(temp, self._root / "packs" / f"{pack_id}.idx")
        finally:
            temp.unlink(missing_ok=True)

    def new_pack(self) -> LocalPackSink:
        return LocalPackSink(self._new_temp(), self._root / "packs")

    def read_spans(
        self, pack_id: str, spans: Sequence[tuple[int, int]], buffers: BufferPool | None = None
    ) -> Iterator[bytes | memoryview]:
        path = self.pack_location(pack_id)
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
        except FileNotFoundError as exc:
            raise PackGone(f"pack {path} listed in its index is gone") from exc
        try:
            for start, end in spans:
                # From a 64-byte boundary, so that the copy runs at full speed.
                skip = start % ALIGNMENT
                if buffers is None or end - start + skip > buffers.size:
                    yield _pread_exactly(fd, start, end - start)
                    continue
                view = buffers.take()[: end - start + skip]
                yield view[skip : read_into(fd, view, start - skip)]
        finally:
            os.close(fd)

    def pack_location(self, pack_id: str) -> str:
        return str(self._root / "packs" / f"{pack_id}.pack")

    def _blob_path(self, digest: str) -> Path:
        return self._root / "blobs" / digest[:2] / digest[2:]

    def _stored_size(self, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def _new_temp(self) -> Path:
        temp_dir = self._root / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        return temp_dir / f"{uuid.uuid4().hex}.part"

    def _publish(self, temp: Path, digest: str, size: int) -> None:
        if self._stored_size(digest) == size and self.touch(blob_name(digest)):
            logger.debug("blob %s already stored in %s", digest, self.uri)
            return
        final = self._blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        logger.debug("stored blob %s (%d bytes) in %s", digest, size, self.uri)


class LocalPackSink:
    """A pack written to `tmp/<uuid>.part` and renamed to `packs/<id>.pack` on commit."""

    def __init__(self, temp: Path, packs: Path) -> None:
        self.pack_id = temp.stem
        self._temp = temp
        self._final = packs / f"{self.pack_id}.pack"
        self._fd: int | None = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY)

    def write(self, buffers: Sequence[bytes | memoryview]) -> None:
        assert self._fd is not None
        for start in range(0, len(buffers), _IOV_MAX):
            group = buffers[start : start + _IOV_MAX]
            written = os.writev(self._fd, group) if hasattr(os, "writev") else 0
            for buffer in group:  # the rest of a short writev, or everything without writev
                view = memoryview(buffer)[written:]
                written = max(0, written - len(buffer))
                while view:
                    view = view[os.write(self._fd, view) :]

    def copy_from(self, source: int, offset: int, count: int, at: int) -> int:
        """Copy up to `count` bytes from `offset` in file `source` to `at` in the pack, in
        the kernel (Linux); the bytes copied, 0 at the source's end."""
        assert self._fd is not None
        os.lseek(self._fd, at, os.SEEK_SET)
        return os.sendfile(self._fd, source, offset, count)

    def mapped(self, size: int) -> mmap.mmap:
        """Extend the pack to `size` bytes and map it read-only (see _copy_chunks.py)."""
        assert self._fd is not None
        os.ftruncate(self._fd, size)
        fd = os.open(self._temp, os.O_RDONLY | _O_BINARY)
        try:
            return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def commit(self) -> None:
        self._close()
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._temp, self._final)

    def abort(self) -> None:
        self._close()
        self._temp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _pread_exactly(fd: int, offset: int, length: int) -> bytes:
    """Read `length` bytes at `offset`, fewer only at end of file (a truncated pack)."""
    buffer = bytearray(length)
    return bytes(buffer[: read_into(fd, memoryview(buffer), offset)])
