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
- `check` reads everything back and `repair` cleans up after killed writers (`loopline
  fsck`); `collect_garbage` frees what nothing references (`loopline gc`), safely beside
  writers because content a writer reuses is touched (_sweep.py).
- No fsync: it would make every put wait for the disk, and the usual damage a power
  cut does to a recent blob (an empty or truncated file) is caught by the verifying
  read and repaired by storing the file again (`put_*` skips a blob only if its size
  matches).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loopline.errors import CorruptedData, InvalidInput, LooplineError, NotFound, StoreUnavailable
from loopline.store._arguments import (
    as_path,
    as_str_path,
    check_digest,
    check_item,
    iterable,
    sequence,
    workers_count,
)
from loopline.store._backend import (
    Backend,
    Blob,
    PackGone,
    Progress,
    StoredFile,
    blob_name,
    pack_name,
)
from loopline.store._hashing import copy_hashing, hash_bytes, verify
from loopline.store._local_blobs import LocalBlobs
from loopline.store._packs import PackIndex

if TYPE_CHECKING:
    from loopline.store._blob_io import BlobReader
    from loopline.store._sweep import SweepResult
    from loopline.store._verify import StoreCheck

__all__ = ["ArtifactStore", "Blob", "StoredFile"]

_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
_PROGRESS_STEP = 1 << 20  # report progress in steps of at least this many bytes


class ArtifactStore:
    """Content-addressed blobs in a local folder (`/path`, `file:///path`), `s3://bucket/prefix`
    or on a loopline server (`http(s)://host:port`).

    S3 credentials come from the standard AWS environment variables and config files;
    `s3_endpoint_url` points at an S3-compatible server such as MinIO. A server's URI
    makes an `HttpArtifactStore` (_http_blobs.py), which sends `token` as a bearer token;
    other stores ignore `token`. See the module docstring for the layout and the
    atomicity and verification guarantees.

    Raises (from every method): `StoreUnavailable` when the folder, bucket or server
    cannot be read or written, with the underlying error chained.
    """

    _remote = False  # True for a server's store, which has no back-end here

    def __new__(
        cls, uri: str, *, s3_endpoint_url: str | None = None, token: str | None = None
    ) -> ArtifactStore:
        if cls is ArtifactStore and _is_http(uri):
            from loopline.store._http_blobs import HttpArtifactStore  # loads httpx

            return super().__new__(HttpArtifactStore)
        return super().__new__(cls)

    def __init__(
        self, uri: str, *, s3_endpoint_url: str | None = None, token: str | None = None
    ) -> None:
        self._backend = _open_backend(uri, s3_endpoint_url)
        self._index = PackIndex(self._backend)

    @property
    def uri(self) -> str:
        """The normalized store location: an absolute folder path or `s3://bucket/prefix`."""
        return self._backend.uri

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def close(self) -> None:
        """Release connections (a server's store); nothing to do for a folder or S3."""

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store a regular file's content as one loose blob (identical content: once).

        Raises:
            NotFound: `path` does not exist.
            InvalidInput: `path` is a directory or not a regular file.
            Conflict: the file changed while it was being stored.
        """
        source = as_path(path, "put_file")
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

        sources = [as_str_path(path, "put_files") for path in sequence(paths, "put_files")]
        with self._boundary(f"storing {len(sources)} files"), _batched(progress) as report:
            return _put_files.put_files(
                self._backend, self._index, sources, workers_count(workers), report
            )

    def exists(self, digest: str) -> bool:
        """Whether a blob with this hash is stored, loose or packed (content not verified)."""
        digest = check_digest(digest)
        with self._boundary(f"looking up blob {digest}"):
            if self._index.get(digest) is not None or self._backend.exists(digest):
                return True
            return self._index.find(digest) is not None

    def missing(self, hashes: Iterable[str]) -> set[str]:
        """The blob hashes in `hashes` that this store has neither loose nor packed.

        The packs and loose blobs that hold the others are touched: the caller is about
        to build on them, and a `gc` running meanwhile must keep them (see _sweep.py).

        Raises:
            InvalidInput: a hash is not 64 lowercase hex characters.
        """
        wanted = {check_digest(digest) for digest in iterable(hashes, "missing")}
        with self._boundary(f"looking up {len(wanted)} blobs"):
            unknown = {digest for digest in wanted if self._index.get(digest) is None}
            if unknown:
                self._index.refresh()
                unknown = {digest for digest in unknown if self._index.get(digest) is None}
            is_loose = self._backend.loose_lookup(len(unknown))
            absent = {digest for digest in unknown if not is_loose(digest)}
            return absent | self._touch(wanted - absent, unknown - absent)

    def get_bytes(self, digest: str) -> bytes:
        """The content of a blob, verified against its hash.

        Raises:
            InvalidInput: `digest` is not 64 lowercase hex characters.
            NotFound: no such blob.
            CorruptedData: the stored bytes no longer hash to `digest`.
        """
        digest = check_digest(digest)
        with self._boundary(f"reading blob {digest}"):
            try:
                return self._get_bytes(digest)
            except PackGone:  # gc repacked it after this process read the indexes
                self._index.refresh()
                return self._get_bytes(digest)

    def _get_bytes(self, digest: str) -> bytes:
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
        digest = check_digest(digest)
        target = as_path(dest, "get_file")
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
        checked = [check_item(item) for item in sequence(items, "get_files")]
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
        between a local store and S3 or a loopline server.

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
        from loopline.store import _copy_to

        action = f"copying {len(lacking)} blobs to {other.uri}"
        if other._remote:  # a server: it takes the blobs through its own upload path
            with self._boundary(action), _batched(progress) as report:
                return other._receive(self, lacking, report)
        with (
            self._boundary(action, also=other._backend.errors),
            _batched(progress) as report,
        ):
            return _copy_to.copy_blobs(self, other, lacking, report)

    def open_blob(self, digest: str) -> BlobReader:
        """A reader of one stored blob: its size, then its bytes whole or streamed, verified.

        Raises:
            InvalidInput: `digest` is not 64 lowercase hex characters.
            NotFound: no such blob.
        """
        from loopline.store._blob_io import open_blob

        digest = check_digest(digest)
        with self._boundary(f"looking up blob {digest}"):
            return open_blob(self._backend, self._index, digest)

    def download_url(self, digest: str, expires: int = 3600) -> str | None:
        """A pre-signed URL that serves the blob straight from S3 for `expires` seconds,
        or None: a local store, or a packed blob (served through its pack)."""
        digest = check_digest(digest)
        presign = getattr(self._backend, "presigned_url", None)
        if presign is None or self._index.get(digest) is not None:
            return None
        with self._boundary(f"signing a URL for blob {digest}"):
            url: str | None = presign(digest, expires)
            return url

    def put_blobs(self, blobs: Iterable[tuple[str, bytes]]) -> int:
        """Store `(digest, content)` pairs received from elsewhere into new packs, each
        checked against its digest first; the bytes written (known content is skipped).

        Raises:
            InvalidInput: a malformed digest, or content that does not hash to its digest
                (nothing of the pack being written is kept).
        """
        from loopline.store._blob_io import put_blobs

        with self._boundary("storing received blobs"):
            return put_blobs(self._backend, self._index, blobs)

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove writes abandoned more than `older_than` seconds ago; returns how many.

        Locally these are `tmp/*.part` files left by killed writers; on S3, incomplete
        multipart uploads under the prefix; on both, packs whose index was never written.
        `older_than=0` also removes writes still in progress, so use it only when no
        writer is running.
        """
        from loopline.store._inventory import remove_leftovers, take_inventory

        with self._boundary("cleaning abandoned writes"):
            leftovers = take_inventory(self._backend).leftovers
            return remove_leftovers(self._backend, leftovers, time.time() - older_than)

    def check(
        self, *, progress: Progress | None = None, on_total: Progress | None = None
    ) -> StoreCheck:
        """Read back and verify every blob and pack index; list abandoned writes.

        `on_total` is called once with the bytes to read, `progress` as they are read.
        Nothing is changed (see `repair`).
        """
        from loopline.store import _verify

        with self._boundary("checking the store"), _batched(progress) as report:
            return _verify.check(self._backend, report, on_total or (lambda total: None))

    def repair(self, found: StoreCheck) -> int:
        """Fix what `check` found repairable; returns how many objects were fixed.

        Removes writes abandoned over an hour ago, moves corrupt loose blobs to
        `quarantine/` and drops corrupt packed blobs from their index, so that storing
        the same content again repairs them. Nothing intact is removed.
        """
        from loopline.store import _verify

        with self._boundary("repairing the store"):
            repaired = _verify.repair(self._backend, found)
            self._index.reload()
        return repaired

    def collect_garbage(
        self,
        referenced: Callable[[], set[str]],
        *,
        grace: float = 3600.0,
        dry_run: bool = False,
        repack_above: float = 0.5,
        progress: Progress | None = None,
    ) -> SweepResult:
        """Remove the blobs outside `referenced()` stored more than `grace` seconds ago.

        `referenced` is called after the store has been listed and must return every
        digest anything still needs (chunks of chunked files included). Packs with no
        live blob are removed; packs whose unreferenced bytes exceed `repack_above` of
        their size are rewritten with their live blobs only. `dry_run` changes nothing.
        See _sweep.py for why this is safe beside concurrent writers.

        Raises:
            CorruptedData: a live blob to be copied out of a pack is corrupt.
        """
        from loopline.store import _sweep

        if not 0 <= repack_above < 1:
            raise InvalidInput(f"repack_above must be in [0, 1), got {repack_above!r}")
        if grace < 0:
            raise InvalidInput(f"grace must be at least 0 seconds, got {grace!r}")
        with self._boundary("collecting garbage"), _batched(progress) as report:
            return _sweep.collect_garbage(
                self._backend,
                self._index,
                referenced,
                grace=grace,
                dry_run=dry_run,
                repack_above=repack_above,
                progress=report,
            )

    def _get_files(
        self, items: list[tuple[StoredFile, str]], workers: int | None, progress: Progress | None
    ) -> None:
        from loopline.store import _get_files

        for attempt in (1, 2):
            try:
                with _batched(progress) as report:
                    _get_files.get_files(
                        self._backend,
                        self._index,
                        items,
                        self._read_loose,
                        self._copy_loose,
                        report,
                        workers_count(workers),
                    )
                return
            except PackGone:  # gc repacked a pack after this process read the indexes
                if attempt == 2:
                    raise
                self._index.refresh()

    def _receive(self, source: ArtifactStore, digests: list[str], report: Progress) -> int:
        """Take `digests` from `source` (a server's store does; see copy_to)."""
        raise NotImplementedError

    def _touch(self, found: set[str], loose: set[str]) -> set[str]:
        """Touch the packs and loose blobs holding `found`; those removed meanwhile."""
        gone = {digest for digest in loose if not self._backend.touch(blob_name(digest))}
        packs: dict[str, list[str]] = {}
        for digest in found - loose:
            where = self._index.get(digest)
            if where is not None:
                packs.setdefault(where.pack_id, []).append(digest)
        for pack_id, digests in packs.items():
            if not self._backend.touch(pack_name(pack_id, "idx")):
                gone.update(digests)
        return gone

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


def _is_http(uri: object) -> bool:
    if not isinstance(uri, str):
        return False
    scheme = _URI_SCHEME.match(uri)
    return scheme is not None and scheme.group(1).lower() in ("http", "https")


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
        hint="use a folder path, file:///path, s3://bucket/prefix or http(s)://server",
    )


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
