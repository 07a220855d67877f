"""Resumable uploads of single blobs: the bytes a server has received of a blob so far.

A client that sends a large blob (`PUT /api/v1/blobs/<digest>` with `Content-Range`,
server/api/blobs.py) and loses its connection asks how many bytes the server kept and
sends only the rest. Those bytes are kept here, as `<folder>/<digest>.part`:

- The file is named by the digest alone (checked again here: 64 lowercase hex
  characters), so no other client input becomes part of a path, and a client that died
  and the one that replaces it resume the same upload. It is opened without following
  a symlink.
- One request at a time adds to it: it holds an exclusive `flock` on the file while it
  writes (across the server's worker processes too). A second request for the same
  digest is refused with Conflict, and the client waits for the first one to end.
- Nothing becomes a blob before the whole has hashed to its digest; a partial whose
  bytes hash otherwise is removed, and the client sends the blob again from its start.
  A request that resumes hashes the bytes already kept again, from the local disk: a
  BLAKE3 hasher's state cannot be saved, and reading a part back costs far less than
  sending it again.
- A partial nobody has added to for `ABANDONED_AFTER` (an hour) is abandoned: the server
  removes such files when a new upload starts. For a local artifact store the folder is
  the store's own `tmp/uploads`, so `loopline gc` and `loopline fsck --repair` remove
  them too; an S3 store has no local temp area, so the server keeps them in its project.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from loopline.errors import Conflict, InvalidInput, LooplineError, PayloadTooLarge, StoreUnavailable
from loopline.store._arguments import check_digest
from loopline.store._backend import Blob
from loopline.store._inventory import ABANDONED_AFTER
from loopline.store._local_blobs import LocalBlobs

if TYPE_CHECKING:
    from loopline.store.artifacts import ArtifactStore

_FLAGS = os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_READ = 8 << 20  # bytes read at once when the kept part is hashed again
_held: set[str] = set()  # where there is no flock: the partials this process holds
_held_lock = threading.Lock()


@dataclass(frozen=True)
class UploadState:
    """How far an upload has come: the bytes kept, and whether a request adds to them now."""

    offset: int
    busy: bool


def upload_folder(artifacts: ArtifactStore, project_state: Path) -> Path:
    """Where a server keeps partial uploads: a local store's own `tmp/uploads` (cleaned
    with the store, and on its file system), else `tmp/uploads` in the project's state
    folder (an S3 store: the blob is complete on the server's disk before it goes up)."""
    backend = getattr(artifacts, "_backend", None)
    if isinstance(backend, LocalBlobs):
        return Path(backend.uri) / "tmp" / "uploads"
    return project_state / "tmp" / "uploads"


def upload_state(folder: Path, digest: str) -> UploadState:
    """The bytes of `digest` kept in `folder` (0 if none), and whether a request holds them."""
    path = _part(folder, digest)
    with _boundary(path):
        try:
            fd = os.open(path, os.O_RDONLY | _FLAGS)
        except FileNotFoundError:
            return UploadState(0, False)
        try:
            busy = not _lock(fd, path, shared=True)
            if not busy:
                _unlock(fd, path)
            return UploadState(os.fstat(fd).st_size, busy)
        finally:
            os.close(fd)


class Appending:
    """A request's exclusive hold on one blob's partial upload (see `open_upload`)."""

    def __init__(self, fd: int, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.offset = os.fstat(fd).st_size
        self._fd: int | None = fd
        self._hasher: Any = None
        self._finished = False

    def resume(self, start: int, total: int) -> None:
        """Check that bytes from `start` on, of `total`, may be added; hash those held.

        Raises:
            Conflict: the partial holds other than `start` bytes.
            PayloadTooLarge: the server's disk lacks room for the rest.
        """
        assert self._fd is not None
        if start != self.offset:
            raise Conflict(
                f"the server holds {self.offset} bytes of blob {self.digest}; "
                f"an upload must go on from there, not from byte {start}",
                hint="ask how many bytes the server holds (the upload state) first",
            )
        free = shutil.disk_usage(self.path.parent).free
        if total - start > free:
            raise PayloadTooLarge(
                f"blob {self.digest} has {total - start} bytes to come and the server has "
                f"{free} bytes free for uploads"
            )
        self._hasher = _hash_kept(self._fd, self.offset)

    def write(self, piece: bytes) -> None:
        """Append `piece` (hashed once written)."""
        assert self._fd is not None
        with _boundary(self.path):
            view = memoryview(piece)
            while view:
                view = view[os.write(self._fd, view) :]
            self._hasher.update(piece)
            self.offset += len(piece)

    def cut_back(self, size: int) -> None:
        """Forget what this request wrote after `size` bytes (a body longer than its range);
        the request ends here, so its hasher is not needed any more."""
        assert self._fd is not None
        with _boundary(self.path):
            os.ftruncate(self._fd, size)
        self.offset = size

    def finish(self, artifacts: ArtifactStore) -> Blob:
        """Store the complete blob (`store_verified`), once it has hashed to its digest;
        the partial goes.

        Raises:
            InvalidInput: the bytes hash to something else (the partial is removed).
        """
        assert self._fd is not None
        actual = self._hasher.hexdigest()
        with _boundary(self.path):
            if actual != self.digest:
                self.path.unlink()  # held: nobody else has moved or replaced it
                raise InvalidInput(
                    f"the {self.offset} bytes uploaded as blob {self.digest} hash to {actual}; "
                    "nothing was stored",
                    hint="send the blob's exact bytes under its BLAKE3 digest, from its start",
                )
            store_verified(artifacts, self.path, self.digest, self.offset)
            self._finished = True
            if _names(self.path, self._fd):  # not moved into place (stored already, or S3)
                self.path.unlink()
        return Blob(self.digest, self.offset)

    def close(self) -> None:
        """Let go of the partial (kept for a resume unless finished); removes it if empty."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            if not self._finished and os.fstat(fd).st_size == 0 and _names(self.path, fd):
                self.path.unlink()
        _unlock(fd, self.path)
        os.close(fd)


def store_verified(artifacts: ArtifactStore, path: Path, digest: str, size: int) -> None:
    """Store the file at `path`, already hashed to `digest` as it arrived, as that blob. A
    local store takes the file itself when it is on its file system (renamed into place,
    not copied and hashed again); other stores upload it (`put_file`)."""
    backend = getattr(artifacts, "_backend", None)
    if isinstance(backend, LocalBlobs) and path.is_relative_to(backend.uri):
        backend.adopt(path, digest, size)
    else:
        artifacts.put_file(path)


def open_upload(folder: Path, digest: str, start: int, total: int) -> Appending:
    """Hold the partial upload of `digest` to add bytes from `start` on, of `total` bytes.

    Raises:
        Conflict: another request holds it, or it holds other than `start` bytes.
        PayloadTooLarge: the server's disk lacks room for the rest.
    """
    path = _part(folder, digest)
    with _boundary(path):
        folder.mkdir(parents=True, exist_ok=True)
        appending = Appending(_open_locked(path, digest), path, digest)
        try:
            if appending.offset == 0:  # a new upload: a moment to clear away dead ones
                remove_abandoned(folder)
            appending.resume(start, total)
        except BaseException:
            appending.close()
            raise
    return appending


def remove_abandoned(folder: Path, older_than: float = ABANDONED_AFTER) -> int:
    """Remove the partials in `folder` nobody has added to for `older_than` seconds and
    nobody holds; how many."""
    removed = 0
    cutoff = time.time() - older_than
    for entry in os.scandir(folder):
        if not entry.name.endswith(".part") or entry.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime > cutoff:
                continue
            fd = os.open(entry.path, os.O_RDONLY | _FLAGS)
            try:
                if _lock(fd, entry.path, shared=False):
                    if os.fstat(fd).st_mtime <= cutoff:
                        os.unlink(entry.path)
                        removed += 1
                    _unlock(fd, entry.path)
            finally:
                os.close(fd)
    return removed


def _part(folder: Path, digest: str) -> Path:
    return folder / f"{check_digest(digest)}.part"


def _open_locked(path: Path, digest: str) -> int:
    """The partial's descriptor, locked; made if absent. A file removed (finished) between
    the open and the lock is let go, and the name opened again."""
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _FLAGS, 0o666)  # as the store's files
        if not _lock(fd, str(path), shared=False):
            os.close(fd)
            raise Conflict(
                f"blob {digest} is being uploaded by another request",
                hint="wait for it to end, then ask how far it came",
            )
        if _names(path, fd):
            os.lseek(fd, 0, os.SEEK_END)
            return fd
        _unlock(fd, str(path))
        os.close(fd)
    raise Conflict(f"blob {digest} is being uploaded by other requests; try again")


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (not removed, nor replaced)."""
    held = os.fstat(fd)
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (named.st_ino, named.st_dev) == (held.st_ino, held.st_dev)


def _hash_kept(fd: int, size: int) -> Any:
    """A hasher fed the first `size` bytes of the partial, which are all it holds (the
    descriptor is left at its end, where the next bytes go)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    done = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while done < size:
        piece = os.read(fd, min(_READ, size - done))
        if not piece:
            raise StoreUnavailable(f"a partial upload shrank while it was read ({done} bytes)")
        hasher.update(piece)
        done += len(piece)
    return hasher


def _lock(fd: int, path: str | Path, *, shared: bool) -> bool:
    """Try to lock `fd`; whether it was locked (flock; else this process's own list)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one server process guards itself
        with _held_lock:
            if str(path) in _held:
                return False
            _held.add(str(path))
            return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int, path: str | Path) -> None:
    try:
        import fcntl
    except ImportError:
        with _held_lock:
            _held.discard(str(path))
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _boundary(path: Path) -> Iterator[None]:
    """A file system error as StoreUnavailable, naming the partial."""
    try:
        yield
    except LooplineError:
        raise
    except OSError as exc:
        raise StoreUnavailable(f"partial upload {path}: {exc}") from exc
