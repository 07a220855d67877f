"""Content-addressed artifact storage: every blob is named by the BLAKE3 hash of its bytes.

Layout under the store root (a local folder, or an `s3://bucket/prefix`):

    blobs/<hash[:2]>/<hash[2:]>    loose blobs: one object per content (put_file, put_bytes)
    packs/<id>.pack, <id>.idx      packed blobs: many per object (put_files, copy_to; _packs.py)
    tmp/<uuid>.part                 local stores only: a write in progress

Two ways in. `put_file`/`put_bytes` store one artifact (a model, a plot) as a loose blob.
`put_files` stores many files at once, as `data add` needs: files below 4 MiB become one
blob each, larger ones are cut into content-defined chunks (_chunks.py), and all new
blobs are appended to pack files, because 20,000 loose blobs cost far more to write
than to hash. `get_files`, `missing` and `copy_to` (push and pull between a local store
and S3) work on the same blobs; `exists`, `get_bytes` and `get_file` find loose and
packed blobs alike.

Guarantees:

- A blob appears under its final name only when complete. Locally, bytes go to a
  `.part` file that `os.replace` renames into place, so a writer killed mid-write
  leaves only the `.part` (`clean_temp` removes it). On S3, an object becomes visible
  only when its PUT or multipart upload completes, so the content is hashed first and
  uploaded straight to its final key; a killed multipart upload stays invisible until
  `clean_temp` (or a bucket lifecycle rule) aborts it. A pack's blobs become visible
  only when its index is written, after the pack is complete.
- Reads always verify: `get_bytes`, `get_file` and `get_files` hash what they return and
  raise `CorruptedData` on a mismatch; no destination file is left half-written.
- No fsync: it would make every put wait for the disk, and the usual damage a power
  cut does to a recent blob (an empty or truncated file) is caught by the verifying
  read and repaired by storing the file again (`put_*` skips a blob only if its size
  matches).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from loopline.errors import CorruptedData, InvalidInput, LooplineError, NotFound, StoreUnavailable
from loopline.store._backend import Backend, Blob, Progress, StoredFile
from loopline.store._hashing import copy_hashing, hash_bytes, verify
from loopline.store._local_blobs import LocalBlobs
from loopline.store._packs import PackIndex, PackWriter

__all__ = ["ArtifactStore", "Blob", "StoredFile"]

T = TypeVar("T")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
_PROGRESS_STEP = 1 << 20  # report progress in steps of at least this many bytes
_COPY_PACKED_MAX = 16 << 20  # copy_to packs loose blobs up to this size, copies larger ones


class ArtifactStore:
    """Content-addressed blobs in a local folder (`/path`, `file:///path`) or `s3://bucket/prefix`.

    S3 credentials come from the standard AWS environment variables and config files;
    `s3_endpoint_url` points at an S3-compatible server such as MinIO. See the module
    docstring for the layout and the atomicity and verification guarantees.

    Raises (from every method): `StoreUnavailable` when the folder or bucket cannot be
    read or written, with the underlying error chained.
    """

    def __init__(self, uri: str, *, s3_endpoint_url: str | None = None) -> None:
        self._backend = _open_backend(uri, s3_endpoint_url)
        self._index = PackIndex(self._backend)

    @property
    def uri(self) -> str:
        """The normalized store location: an absolute folder path or `s3://bucket/prefix`."""
        return self._backend.uri

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store a regular file's content as one loose blob (identical content: once).

        Raises:
            NotFound: `path` does not exist.
            InvalidInput: `path` is a directory or not a regular file.
            Conflict: the file changed while it was being stored.
        """
        source = _as_path(path, "put_file")
        with self._boundary(f"storing {source}"):
            return self._backend.put_file(source)

    def put_bytes(self, data: bytes) -> Blob:
        """Store `data` as one loose blob (identical content: once)."""
        if not isinstance(data, bytes):
            raise InvalidInput(f"put_bytes expects bytes, got {type(data).__name__}")
        digest = hash_bytes(data)
        with self._boundary(f"storing {len(data)} bytes"):
            self._backend.put_bytes(digest, data)
        return Blob(digest, len(data))

    def put_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> list[StoredFile]:
        """Store many files, packing small ones and chunking large ones; in `paths` order.

        Content already stored (loose or packed), or repeated within `paths`, is not
        written again. A file of 4 MiB or more is stored as content-defined chunks, so
        an edit to it stores only the chunks around the edit; its `StoredFile.hash` is
        then not its b3sum (see StoredFile). `workers` threads (default: one per CPU)
        hash larger files; `progress` is called with byte counts as files are read.

        Raises:
            NotFound: a path does not exist (it may have been deleted since listed).
            InvalidInput: a path is a directory or not a regular file.
            Conflict: a file changed while it was being stored.
            On any error, the pack being written is discarded: no blob of it is visible.
        """
        from loopline.store import _put_files  # loads only when used: `import loopline` stays fast

        sources = [_as_str_path(path, "put_files") for path in _sequence(paths, "put_files")]
        with self._boundary(f"storing {len(sources)} files"), _batched(progress) as report:
            return _put_files.put_files(
                self._backend, self._index, sources, _workers(workers), report
            )

    def exists(self, digest: str) -> bool:
        """Whether a blob with this hash is stored, loose or packed (content not verified)."""
        digest = _check_digest(digest)
        with self._boundary(f"looking up blob {digest}"):
            if self._index.get(digest) is not None or self._backend.exists(digest):
                return True
            return self._index.find(digest) is not None

    def missing(self, hashes: Iterable[str]) -> set[str]:
        """The blob hashes in `hashes` that this store has neither loose nor packed.

        Raises:
            InvalidInput: a hash is not 64 lowercase hex characters.
        """
        wanted = {_check_digest(digest) for digest in _iterable(hashes, "missing")}
        with self._boundary(f"looking up {len(wanted)} blobs"):
            unknown = {digest for digest in wanted if self._index.get(digest) is None}
            if unknown:
                self._index.refresh()
                unknown = {digest for digest in unknown if self._index.get(digest) is None}
            is_loose = self._backend.loose_lookup(len(unknown))
            return {digest for digest in unknown if not is_loose(digest)}

    def get_bytes(self, digest: str) -> bytes:
        """The content of a blob, verified against its hash.

        Raises:
            InvalidInput: `digest` is not 64 lowercase hex characters.
            NotFound: no such blob.
            CorruptedData: the stored bytes no longer hash to `digest`.
        """
        digest = _check_digest(digest)
        with self._boundary(f"reading blob {digest}"):
            where = self._index.get(digest)
            if where is None:
                with contextlib.suppress(NotFound):
                    return self._read_loose(digest)
                where = self._index.find(digest)
                if where is None:
                    raise self._not_found(digest)
            [read] = self._backend.read_spans(where.pack_id, [(where.offset, where.end)])
        data = read if isinstance(read, bytes) else bytes(read)  # no buffers given: bytes
        location = f"{self._backend.pack_location(where.pack_id)} at offset {where.offset}"
        if len(data) != where.length:
            raise CorruptedData(f"blob {digest} at {location} is truncated")
        verify(digest, hash_bytes(data), location)
        return data

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> None:
        """Write a blob to `dest`, verified, atomically, creating parent folders.

        The bytes go to a hidden `.part` file next to `dest` that replaces `dest` only
        once its hash has been checked; on any error `dest` is left as it was.

        Raises:
            InvalidInput: a malformed `digest`, or `dest` is a directory.
            NotFound: no such blob.
            CorruptedData: the stored bytes no longer hash to `digest`.
        """
        digest = _check_digest(digest)
        target = _as_path(dest, "get_file")
        with self._boundary(f"copying blob {digest} to {target}"):
            if target.is_dir():
                raise InvalidInput(f"cannot write blob {digest} to {target}: it is a directory")
            where = self._index.get(digest)
            if where is None:
                try:
                    self._copy_loose(digest, target)
                    return
                except NotFound:
                    where = self._index.find(digest)
                    if where is None:
                        raise self._not_found(digest) from None
            self._get_files([(StoredFile(digest, where.length), str(target))], None, None)

    def get_files(
        self,
        items: Sequence[tuple[StoredFile, str | os.PathLike[str]]],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Restore stored files to their destinations, verified, creating parent folders.

        Each file is assembled from its blobs (chunks in order), every blob is checked
        against its hash and a chunked file's chunk list against its id, and each
        destination is replaced only once its file is complete. Packs are read with few,
        coalesced reads. `workers` caps the threads that verify large blobs; `progress`
        is called with byte counts as files are written.

        Raises:
            InvalidInput: a malformed item, a destination named twice or a directory.
            NotFound: a blob is not stored (the message names the file).
            CorruptedData: a blob or chunk list does not match its hash (the message
                names the file and the blob); no partial file is left at a destination.
        """
        checked = [_check_item(item) for item in _sequence(items, "get_files")]
        if len({dest for _, dest in checked}) != len(checked):
            raise InvalidInput("get_files got the same destination twice")
        with self._boundary(f"restoring {len(checked)} files"):
            self._get_files(checked, workers, progress)

    def copy_to(
        self,
        other: ArtifactStore,
        hashes: Iterable[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Copy the blobs in `hashes` that `other` lacks into new packs there; bytes copied.

        Each blob is verified as it is read here. Used to push and pull dataset versions
        between a local store and S3.

        Raises:
            InvalidInput: `other` is not an ArtifactStore, or a malformed hash.
            NotFound: a blob `other` lacks is not in this store either.
            CorruptedData: a blob here no longer matches its hash.
        """
        if not isinstance(other, ArtifactStore):
            raise InvalidInput(f"copy_to expects an ArtifactStore, got {type(other).__name__}")
        lacking = sorted(other.missing(hashes))
        if not lacking:
            return 0
        action = f"copying {len(lacking)} blobs to {other.uri}"
        with (
            self._boundary(action, also=other._backend.errors),
            _batched(progress) as report,
        ):
            return self._copy_blobs(other, lacking, report)

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove writes abandoned more than `older_than` seconds ago; returns how many.

        Locally these are `tmp/*.part` files left by killed writers; on S3, incomplete
        multipart uploads under the prefix; on both, packs whose index was never written.
        `older_than=0` also removes writes still in progress, so use it only when no
        writer is running.
        """
        with self._boundary("cleaning abandoned writes"):
            return self._backend.clean_temp(older_than)

    def _get_files(
        self, items: list[tuple[StoredFile, str]], workers: int | None, progress: Progress | None
    ) -> None:
        from loopline.store import _get_files

        with _batched(progress) as report:
            _get_files.get_files(
                self._backend,
                self._index,
                items,
                self._read_loose,
                self._copy_loose,
                report,
                _workers(workers),
            )

    def _copy_blobs(self, other: ArtifactStore, digests: list[str], report: Progress) -> int:
        from loopline.store import _get_files

        packed, loose = _get_files.locate(
            self._backend, self._index, dict.fromkeys(digests), lambda d: f"copy to {other.uri}"
        )
        copied = 0
        with (
            PackWriter(other._backend, other._index, lambda digest: False) as writer,
            contextlib.closing(_get_files.read_packed(self._backend, packed)) as blobs,
        ):
            for digest, where, data in blobs:
                location = f"{self._backend.pack_location(where.pack_id)} at offset {where.offset}"
                if len(data) != where.length:
                    raise CorruptedData(f"blob {digest} at {location} is truncated")
                _get_files.verify_blob(digest, data, f"blob {digest} at {location}")
                writer.add(digest, bytes(data))
                report(len(data))
            for digest in loose:
                copied += self._copy_loose_blob(digest, other, writer, report)
        return copied + writer.bytes_added

    def _copy_loose_blob(
        self, digest: str, other: ArtifactStore, writer: PackWriter, report: Progress
    ) -> int:
        with self._backend.open_blob(digest) as blob:
            size = blob.seek(0, os.SEEK_END)
            if size <= _COPY_PACKED_MAX:
                blob.seek(0)
                data = blob.read()
                verify(digest, hash_bytes(data), self._backend.location(digest))
                writer.add(digest, data)
                report(size)
                return 0
        with tempfile.TemporaryDirectory(prefix="loopline-copy-") as folder:
            temp = Path(folder, digest)
            self._copy_loose(digest, temp)
            other._backend.put_file(temp)
        report(size)
        return size

    def _read_loose(self, digest: str) -> bytes:
        with self._backend.open_blob(digest) as blob:
            data = blob.read()
        verify(digest, hash_bytes(data), self._backend.location(digest))
        return data

    def _copy_loose(self, digest: str, target: Path) -> None:
        with self._backend.open_blob(digest) as blob:
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{os.urandom(8).hex()}.part")
            try:
                with open(temp, "xb") as out:
                    actual = copy_hashing(blob, out)
                verify(digest, actual, self._backend.location(digest))
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)

    def _not_found(self, digest: str) -> NotFound:
        return NotFound(
            f"no blob {digest} in artifact store {self.uri}", hint=self._index.damage_hint()
        )

    @contextlib.contextmanager
    def _boundary(self, action: str, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Turn file system, fsspec and botocore errors into StoreUnavailable."""
        try:
            yield
        except LooplineError:
            raise
        except (*self._backend.errors, *also) as exc:
            raise StoreUnavailable(
                f"artifact store {self.uri}: {action} failed: {exc}",
                hint=self._backend.unavailable_hint,
            ) from exc


def _open_backend(uri: str, s3_endpoint_url: str | None) -> Backend:
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"artifact store URI must be a non-empty string, got {uri!r}")
    scheme = _URI_SCHEME.match(uri)
    if scheme is None:
        return LocalBlobs(Path(uri))
    name = scheme.group(1).lower()
    parts = urlsplit(uri)
    if name == "file" and parts.netloc in ("", "localhost"):
        from urllib.request import url2pathname  # handles C:/ drives; slow-ish to import

        return LocalBlobs(Path(url2pathname(parts.path)))
    if name == "s3":
        from loopline.store._s3_blobs import S3Blobs  # s3fs and botocore load only here

        return S3Blobs(parts.netloc, parts.path.strip("/"), s3_endpoint_url)
    raise InvalidInput(
        f"unsupported artifact store URI {uri!r}",
        hint="use a folder path, file:///path or s3://bucket/prefix",
    )


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(
            f"not a blob hash: {digest!r}", hint="expected 64 lowercase hexadecimal characters"
        )
    return digest


def _check_item(item: tuple[StoredFile, str | os.PathLike[str]]) -> tuple[StoredFile, str]:
    """Validate one `(StoredFile, destination)` pair, including a chunked file's id."""
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], StoredFile)):
        raise InvalidInput(f"get_files expects (StoredFile, path) pairs, got {item!r}")
    stored, dest = item[0], _as_str_path(item[1], "get_files")
    _check_digest(stored.hash)
    for blob in stored.blobs:
        if not isinstance(blob, Blob) or not isinstance(blob.size, int) or blob.size < 0:
            raise InvalidInput(f"not a blob: {blob!r} (restoring {dest})")
        _check_digest(blob.hash)
    if stored.chunks and not _chunk_list_matches(stored):
        raise CorruptedData(
            f"cannot restore {dest}: its chunk list does not match its id {stored.hash}",
            hint="the record of this file was altered; restore it from the dataset version",
        )
    return stored, dest


def _chunk_list_matches(stored: StoredFile) -> bool:
    from loopline.store._chunks import chunked_file_id

    total = sum(chunk.size for chunk in stored.chunks)
    return total == stored.size and chunked_file_id(stored.chunks) == stored.hash


def _as_str_path(value: str | os.PathLike[str], method: str) -> str:
    """Like `_as_path`, as a str: building thousands of Path objects is slow."""
    try:
        path = os.fspath(value)
    except TypeError:
        path = None
    if not isinstance(path, str):
        raise InvalidInput(f"{method} expects a file path, got {type(value).__name__}")
    return path


def _as_path(value: str | os.PathLike[str], method: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(f"{method} expects a file path, got {type(value).__name__}")
    return Path(value)


def _sequence(values: Sequence[T], method: str) -> Sequence[T]:
    if isinstance(values, (str, bytes, os.PathLike)) or not isinstance(values, Sequence):
        raise InvalidInput(f"{method} expects a list, got {type(values).__name__}")
    return values


def _iterable(values: Iterable[str], method: str) -> Iterable[str]:
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{method} expects an iterable of hashes, got a single string")
    return values


def _workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer, got {workers!r}")
    return workers


@contextlib.contextmanager
def _batched(progress: Progress | None) -> Iterator[Callable[[int], None]]:
    """A progress reporter that calls `progress` every `_PROGRESS_STEP` bytes and at the end."""
    if progress is None:
        yield lambda count: None
        return
    pending = 0

    def report(count: int) -> None:
        nonlocal pending
        pending += count
        if pending >= _PROGRESS_STEP:
            progress(pending)
            pending = 0

    yield report
    if pending:
        progress(pending)
