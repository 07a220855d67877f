"""Content-addressed artifact storage: every blob is named by the BLAKE3 hash of its bytes.

Layout under the store root (a local folder, or an `s3://bucket/prefix`):

    blobs/<hash[:2]>/<hash[2:]>    one object per distinct content, written once
    tmp/<uuid>.part                 local stores only: a write in progress

Guarantees:

- A blob appears under its final name only when complete. Locally, bytes go to a
  `.part` file that `os.replace` renames into place, so a writer killed mid-write
  leaves only the `.part` (`clean_temp` removes it). On S3, an object becomes visible
  only when its PUT or multipart upload completes, so the content is hashed first and
  uploaded straight to its final key; a killed multipart upload stays invisible until
  `clean_temp` (or a bucket lifecycle rule) aborts it.
- Reads always verify: `get_bytes` and `get_file` hash what they return and raise
  `CorruptedData` on a mismatch. There is no unverified fast path: with a second core
  free, `get_file` hashes while the kernel copies (see Speed) at little extra cost.
- No fsync: it would make every put wait for the disk, and the usual damage a power
  cut does to a recent blob (an empty or truncated file) is caught by the verifying
  read and repaired by storing the file again (`put_*` skips a blob only if its size
  matches).

Speed: BLAKE3 runs at about 2.3 GB/s per core here, so the obvious loop (read a chunk,
hash it, write it) made write-then-read of 200 MB about 2x a copy plus a hash. On Linux,
files of 4 MiB or more are copied by `os.sendfile` in a worker thread while this thread
hashes the same descriptor with `pread`, which brings it to about 1.5x on an idle 2-core
machine (benchmarks/bench_artifacts.py). mmap hashing measured slower and can kill the
process with SIGBUS if the file is truncated meanwhile, so it is not used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

import blake3

from loopline.errors import (
    Conflict,
    CorruptedData,
    InvalidInput,
    LooplineError,
    MissingExtra,
    NotFound,
    StoreUnavailable,
)
from loopline.store.paths import validate_logical_path

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20  # measured: 1 MiB beats 4-16 MiB for the hash-while-copying loops
_PARALLEL_MIN = 4 << 20  # below this, a copy thread costs more than it saves
_S3_CHUNK = 8 << 20  # read-ahead per ranged GET when downloading
_DIGEST = re.compile(r"[0-9a-f]{64}")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")


@dataclass(frozen=True)
class Blob:
    """A stored blob: its BLAKE3 hash (64 lowercase hex characters) and size in bytes."""

    hash: str
    size: int


class ArtifactStore:
    """Content-addressed blobs in a local folder (`/path`, `file:///path`) or `s3://bucket/prefix`.

    S3 credentials come from the standard AWS environment variables and config files;
    `s3_endpoint_url` points at an S3-compatible server such as MinIO. See the module
    docstring for the atomicity and verification guarantees.

    Raises (from every method): `StoreUnavailable` when the folder or bucket cannot be
    read or written, with the underlying error chained.
    """

    def __init__(self, uri: str, *, s3_endpoint_url: str | None = None) -> None:
        self._backend = _open_backend(uri, s3_endpoint_url)

    @property
    def uri(self) -> str:
        """The normalized store location: an absolute folder path or `s3://bucket/prefix`."""
        return self._backend.uri

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store a regular file's content (once: identical content is not written again).

        Raises:
            NotFound: `path` does not exist.
            InvalidInput: `path` is a directory or not a regular file.
            Conflict: the file changed while it was being stored.
        """
        source = _as_path(path, "put_file")
        with self._boundary(f"storing {source}"):
            return self._backend.put_file(source)

    def put_bytes(self, data: bytes) -> Blob:
        """Store `data` (once: identical content is not written again)."""
        if not isinstance(data, bytes):
            raise InvalidInput(f"put_bytes expects bytes, got {type(data).__name__}")
        digest = _hash_bytes(data)
        with self._boundary(f"storing {len(data)} bytes"):
            self._backend.put_bytes(digest, data)
        return Blob(digest, len(data))

    def exists(self, digest: str) -> bool:
        """Whether a blob with this hash is stored (without verifying its content)."""
        digest = _check_digest(digest)
        with self._boundary(f"looking up blob {digest}"):
            return self._backend.exists(digest)

    def get_bytes(self, digest: str) -> bytes:
        """The content of a blob, verified against its hash.

        Raises:
            InvalidInput: `digest` is not 64 lowercase hex characters.
            NotFound: no such blob.
            CorruptedData: the stored bytes no longer hash to `digest`.
        """
        digest = _check_digest(digest)
        with self._boundary(f"reading blob {digest}"), self._backend.open_blob(digest) as blob:
            data = blob.read()
        _verify(digest, _hash_bytes(data), self._backend.location(digest))
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
            with self._backend.open_blob(digest) as blob:
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
                try:
                    with open(temp, "xb") as out:
                        actual = _copy_hashing(blob, out)
                    _verify(digest, actual, self._backend.location(digest))
                    os.replace(temp, target)
                finally:
                    temp.unlink(missing_ok=True)

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove writes abandoned more than `older_than` seconds ago; returns how many.

        Locally these are `tmp/*.part` files left by killed writers; on S3, incomplete
        multipart uploads under the prefix. `older_than=0` also removes writes still in
        progress, so use it only when no writer is running.
        """
        with self._boundary("cleaning abandoned writes"):
            return self._backend.clean_temp(older_than)

    @contextlib.contextmanager
    def _boundary(self, action: str) -> Iterator[None]:
        """Turn file system, fsspec and botocore errors into StoreUnavailable."""
        try:
            yield
        except LooplineError:
            raise
        except self._backend.errors as exc:
            raise StoreUnavailable(
                f"artifact store {self.uri}: {action} failed: {exc}",
                hint=self._backend.unavailable_hint,
            ) from exc


class _Backend(Protocol):
    """What a storage back-end provides; digests arrive already validated."""

    uri: str
    errors: tuple[type[BaseException], ...]
    unavailable_hint: str

    def location(self, digest: str) -> str: ...
    def exists(self, digest: str) -> bool: ...
    def put_file(self, source: Path) -> Blob: ...
    def put_bytes(self, digest: str, data: bytes) -> None: ...
    def open_blob(self, digest: str) -> contextlib.AbstractContextManager[BinaryIO]: ...
    def clean_temp(self, older_than: float) -> int: ...


def _open_backend(uri: str, s3_endpoint_url: str | None) -> _Backend:
    if not isinstance(uri, str) or not uri:
        raise InvalidInput(f"artifact store URI must be a non-empty string, got {uri!r}")
    scheme = _URI_SCHEME.match(uri)
    if scheme is None:
        return _LocalBlobs(Path(uri))
    name = scheme.group(1).lower()
    parts = urlsplit(uri)
    if name == "file" and parts.netloc in ("", "localhost"):
        from urllib.request import url2pathname  # handles C:/ drives; slow-ish to import

        return _LocalBlobs(Path(url2pathname(parts.path)))
    if name == "s3":
        return _S3Blobs(parts.netloc, parts.path.strip("/"), s3_endpoint_url)
    raise InvalidInput(
        f"unsupported artifact store URI {uri!r}",
        hint="use a folder path, file:///path or s3://bucket/prefix",
    )


class _LocalBlobs:
    """Blobs in a local folder: temp file, then `os.replace` into the final name."""

    errors: tuple[type[BaseException], ...] = (OSError,)
    unavailable_hint = "check that the folder exists and that you can write to it"

    def __init__(self, root: Path) -> None:
        self._root = root.expanduser().absolute()
        self.uri = str(self._root)

    def location(self, digest: str) -> str:
        return str(self._blob_path(digest))

    def exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def put_file(self, source: Path) -> Blob:
        with _open_source(source) as (file, before):
            temp = self._new_temp()
            try:
                with open(temp, "xb") as out:
                    digest = _copy_hashing(file, out)
                _ensure_unchanged(source, file, before)
                self._publish(temp, digest, before.st_size)
            finally:
                temp.unlink(missing_ok=True)
        return Blob(digest, before.st_size)

    def put_bytes(self, digest: str, data: bytes) -> None:
        if self._stored_size(digest) == len(data):
            return
        temp = self._new_temp()
        try:
            temp.write_bytes(data)
            self._publish(temp, digest, len(data))
        finally:
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BinaryIO]:
        try:
            file = open(self._blob_path(digest), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {digest} in artifact store {self.uri}") from exc
        with file:
            yield file

    def clean_temp(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for part in self._root.joinpath("tmp").glob("*.part"):
            with contextlib.suppress(FileNotFoundError):  # its writer finished meanwhile
                if part.stat().st_mtime <= cutoff:
                    part.unlink()
                    removed += 1
        logger.debug("removed %d abandoned temp files from %s", removed, self.uri)
        return removed

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
        if self._stored_size(digest) == size:
            logger.debug("blob %s already stored in %s", digest, self.uri)
            return
        final = self._blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        logger.debug("stored blob %s (%d bytes) in %s", digest, size, self.uri)


class _S3Blobs:
    """Blobs under an S3 prefix, through s3fs: hash first, then upload to the final key."""

    unavailable_hint = "check the bucket name, the endpoint and the AWS credentials"

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        if not bucket:
            raise InvalidInput("an s3:// artifact store URI needs a bucket: s3://bucket/prefix")
        try:
            import s3fs
            from botocore.exceptions import (
                BotoCoreError,
                ClientError,
            )
        except ImportError as exc:
            raise MissingExtra("s3:// artifact stores", "s3") from exc
        prefix = validate_logical_path(prefix) if prefix else ""
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.errors: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)
        client_kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
        # No listings cache: another writer may add a blob at any moment.
        self._fs: Any = s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)

    def location(self, digest: str) -> str:
        return f"s3://{self._key(digest)}"

    def exists(self, digest: str) -> bool:
        return self._stored_size(digest) is not None

    def put_file(self, source: Path) -> Blob:
        with _open_source(source) as (file, before):
            digest = _hash_stream(file)
            if self._stored_size(digest) != before.st_size:
                self._fs.put_file(str(source), self._key(digest))
                try:
                    _ensure_unchanged(source, file, before)
                except Conflict:
                    self._fs.rm_file(self._key(digest))
                    raise
                logger.debug("uploaded blob %s to %s", digest, self.uri)
        return Blob(digest, before.st_size)

    def put_bytes(self, digest: str, data: bytes) -> None:
        if self._stored_size(digest) != len(data):
            self._fs.pipe_file(self._key(digest), data)

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BinaryIO]:
        try:
            file = self._fs.open(self._key(digest), "rb", block_size=_S3_CHUNK)
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {digest} in artifact store {self.uri}") from exc
        with file:
            yield file

    def clean_temp(self, older_than: float) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        params = {"Bucket": self._bucket, "Prefix": self._prefix}
        aborted = 0
        while True:
            page = self._fs.call_s3("list_multipart_uploads", **params)
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    with contextlib.suppress(FileNotFoundError):  # completed or aborted meanwhile
                        self._fs.call_s3(
                            "abort_multipart_upload",
                            Bucket=self._bucket,
                            Key=upload["Key"],
                            UploadId=upload["UploadId"],
                        )
                        aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            params["KeyMarker"] = page["NextKeyMarker"]
            params["UploadIdMarker"] = page["NextUploadIdMarker"]

    def _key(self, digest: str) -> str:
        return f"{self._bucket}/{self._prefix}blobs/{digest[:2]}/{digest[2:]}"

    def _stored_size(self, digest: str) -> int | None:
        try:
            return int(self._fs.info(self._key(digest))["size"])
        except FileNotFoundError:
            return None


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(
            f"not a blob hash: {digest!r}", hint="expected 64 lowercase hexadecimal characters"
        )
    return digest


def _as_path(value: str | os.PathLike[str], method: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(f"{method} expects a file path, got {type(value).__name__}")
    return Path(value)


def _verify(digest: str, actual: str, location: str) -> None:
    if actual != digest:
        raise CorruptedData(
            f"blob {digest} at {location} is corrupted: its content hashes to {actual}",
            hint="restore it from a backup, or delete it and store the original again",
        )


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open a file to store; stat first, so that a FIFO is refused rather than blocking."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"cannot store {path}: it is a directory", hint="store its files")
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"cannot store {path}: not a regular file")
        file = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError as exc:
        raise NotFound(f"cannot store {path}: no such file") from exc
    except PermissionError as exc:
        raise InvalidInput(f"cannot store {path}: permission denied") from exc
    with file:
        yield file, os.fstat(file.fileno())


def _ensure_unchanged(path: Path, file: BinaryIO, before: os.stat_result) -> None:
    after = os.fstat(file.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Conflict(
            f"{path} changed while it was being stored",
            hint="store it once whatever writes it has finished",
        )


def _hash_bytes(data: bytes) -> str:
    digest: str = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    return digest


def _hash_stream(file: BinaryIO, out: BinaryIO | None = None) -> str:
    """Hash `file` from its current position to its end, copying it to `out` if given."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    while chunk := file.read(_CHUNK):
        hasher.update(chunk)
        if out is not None:
            out.write(chunk)
    digest: str = hasher.hexdigest()
    return digest


def _copy_hashing(source: BinaryIO, out: BinaryIO) -> str:
    """Copy `source` to `out` and return the BLAKE3 hash of the bytes copied."""
    size = _file_size(source)
    if sys.platform == "linux" and size is not None and size >= _PARALLEL_MIN:
        out.flush()
        return _copy_hashing_in_parallel(source.fileno(), out.fileno(), size)
    return _hash_stream(source, out)


def _file_size(file: BinaryIO) -> int | None:
    """The size of a file backed by a local file descriptor, None for remote files."""
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):  # io.UnsupportedOperation: no descriptor behind it
        return None


def _copy_hashing_in_parallel(source_fd: int, out_fd: int, size: int) -> str:
    """sendfile in a worker thread while this thread hashes the same bytes with pread.

    Both read the first `size` bytes of one open file description, so they see the same
    bytes unless the file is modified in place meanwhile, which callers detect (an fstat
    check for sources, the hash check for blobs).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopline-copy") as pool:
        copying = pool.submit(_sendfile, source_fd, out_fd, size)
        hasher = blake3.blake3()  # one thread: the other core is busy copying
        buffer = memoryview(bytearray(_CHUNK))
        offset = 0
        while offset < size and (read := os.preadv(source_fd, [buffer], offset)):
            hasher.update(buffer[: min(read, size - offset)])
            offset += read
        copying.result()
    digest: str = hasher.hexdigest()
    return digest


def _sendfile(source_fd: int, out_fd: int, size: int) -> None:
    offset = 0
    while offset < size and (sent := os.sendfile(out_fd, source_fd, offset, size - offset)):
        offset += sent
