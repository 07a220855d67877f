"""An artifact store on a loopline server: `ArtifactStore("http(s)://host:port", token=...)`.

The same methods as a local or S3 store, over the server's blob routes
(server/api/blobs.py; transport in _http_transfer.py). Files are hashed and chunked
here exactly as a local `put_files` would (same `StoredFile`s, same digests), the
server is asked which blobs it lacks, and only those are sent: a push of unchanged data
sends digests, no content. Downloads are verified here whatever the server checked.

Maintenance (`check`, `repair`, `collect_garbage`, `clean_temp`) needs the store's own
files and runs on the server (`loopline fsck`, `loopline gc` there): over HTTP these
raise InvalidInput saying so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import httpx

from loopline.errors import InvalidInput, LooplineError, StoreUnavailable
from loopline.store._arguments import (
    as_path,
    as_str_path,
    check_digest,
    check_item,
    iterable,
    sequence,
    workers_count,
)
from loopline.store._backend import Blob, Progress, StoredFile
from loopline.store._hashing import ensure_unchanged, hash_bytes, hash_stream, open_source
from loopline.store._http_transfer import (
    BATCH_BYTES,
    BATCH_COUNT,
    FRAME_MAX,
    PIECE,
    Server,
    Uploader,
    slices,
)
from loopline.store.artifacts import ArtifactStore, _batched

if TYPE_CHECKING:
    from loopline.store._blob_io import BlobReader
    from loopline.store._sweep import SweepResult
    from loopline.store._verify import StoreCheck


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError)


class HttpArtifactStore(ArtifactStore):
    """Blobs on a loopline server; see the module docstring."""

    _remote = True

    def __init__(
        self, uri: str, *, s3_endpoint_url: str | None = None, token: str | None = None
    ) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise InvalidInput("token must be a non-empty string")
        self._server = Server(uri, token)

    @property
    def uri(self) -> str:
        """The server's base URL."""
        return self._server.base

    def close(self) -> None:
        self._server.close()

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        source = as_path(path, "put_file")
        with self._boundary(f"storing {source}"), open_source(source) as (file, before):
            digest = hash_stream(file)
            if self._server.missing([digest]):

                def pieces(offset: int) -> Iterator[bytes]:
                    file.seek(offset)
                    while piece := file.read(PIECE):
                        yield piece

                try:
                    self._server.upload(digest, before.st_size, pieces)
                except (InvalidInput, StoreUnavailable):  # did the file change meanwhile?
                    ensure_unchanged(source, file.fileno(), before)
                    raise
            ensure_unchanged(source, file.fileno(), before)
            return Blob(digest, before.st_size)

    def put_bytes(self, data: bytes) -> Blob:
        if not isinstance(data, bytes):
            raise InvalidInput(f"put_bytes expects bytes, got {type(data).__name__}")
        digest = hash_bytes(data)
        with self._boundary(f"storing {len(data)} bytes"):
            if self._server.missing([digest]):
                self._server.upload(digest, len(data), slices(data))
        return Blob(digest, len(data))

    def put_blobs(self, blobs: Iterable[tuple[str, bytes]]) -> int:
        with self._boundary("storing blobs"), Uploader(self._server) as uploader:
            for item in blobs:
                if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)):
                    raise InvalidInput(f"put_blobs expects (digest, bytes) pairs, got {item!r:.80}")
                digest, data = check_digest(item[0]), item[1]
                if hash_bytes(data) != digest:
                    raise InvalidInput(f"blob {digest} was given content that hashes otherwise")
                uploader.add(digest, data)
        return uploader.bytes_added

    def put_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> list[StoredFile]:
        from loopline.store._chunks import (
            CHUNKED_MIN,
            chunk_buffers,
            keep_chunk_buffers,
            put_chunked,
        )
        from loopline.store._hashing import open_source_fd
        from loopline.store._put_files import _read_whole

        sources = [as_str_path(path, "put_files") for path in sequence(paths, "put_files")]
        threads = workers_count(workers)
        results: list[StoredFile] = []
        buffers = None
        with (
            self._boundary(f"storing {len(sources)} files"),
            _batched(progress) as report,
            ThreadPoolExecutor(threads, thread_name_prefix="loopline-hash") as pool,
            Uploader(self._server) as uploader,
        ):
            for path in sources:
                read = _read_whole(path, CHUNKED_MIN)
                if not isinstance(read, int):
                    digest, data = read
                    uploader.add(digest, data)
                    results.append(StoredFile(digest, len(data)))
                    report(len(data))
                    continue
                fd, before = open_source_fd(path)
                try:
                    buffers = buffers or chunk_buffers()
                    results.append(put_chunked(path, fd, before, uploader, pool, buffers, report))
                finally:
                    os.close(fd)
        if buffers is not None:
            keep_chunk_buffers(buffers)
        return results

    def exists(self, digest: str) -> bool:
        digest = check_digest(digest)
        with self._boundary(f"looking up blob {digest}"):
            return self._server.exists(digest)

    def missing(self, hashes: Iterable[str]) -> set[str]:
        wanted = sorted({check_digest(digest) for digest in iterable(hashes, "missing")})
        with self._boundary(f"looking up {len(wanted)} blobs"):
            return self._server.missing(wanted)

    def get_bytes(self, digest: str) -> bytes:
        digest = check_digest(digest)
        received = bytearray()
        with self._boundary(f"reading blob {digest}"):
            self._server.download(digest, received.extend)
        return bytes(received)

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> None:
        digest = check_digest(digest)
        target = as_path(dest, "get_file")
        with self._boundary(f"copying blob {digest} to {target}"):
            if target.is_dir():
                raise InvalidInput(f"cannot write blob {digest} to {target}: it is a directory")
            with _replacing(target) as out:
                self._server.download(digest, out.write)

    def get_files(
        self,
        items: Sequence[tuple[StoredFile, str | os.PathLike[str]]],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        checked = [check_item(item) for item in sequence(items, "get_files")]
        if len({dest for _, dest in checked}) != len(checked):
            raise InvalidInput("get_files got the same destination twice")
        workers_count(workers)
        for _, dest in checked:
            if os.path.isdir(dest):
                raise InvalidInput(f"cannot restore a file to {dest}: it is a directory")
        with self._boundary(f"restoring {len(checked)} files"), _batched(progress) as report:
            self._restore(checked, report)

    def copy_to(
        self,
        other: ArtifactStore,
        hashes: Iterable[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        if not isinstance(other, ArtifactStore):
            raise InvalidInput(f"copy_to expects an ArtifactStore, got {type(other).__name__}")
        lacking = sorted(other.missing(hashes))
        if not lacking:
            return 0
        with (
            self._boundary(f"copying {len(lacking)} blobs to {other.uri}"),
            _batched(progress) as report,
        ):
            large: list[str] = []
            copied = other.put_blobs(self._received(lacking, large, report))
            for digest in large:
                with tempfile.TemporaryDirectory(prefix="loopline-copy-") as folder:
                    temp = Path(folder, digest)
                    with open(temp, "xb") as out:
                        size = self._server.download(digest, out.write)
                    other.put_file(temp)
                report(size)
                copied += size
        return copied

    def _received(
        self, digests: list[str], large: list[str], report: Progress
    ) -> Iterator[tuple[str, bytes]]:
        """The blobs `digests`, fetched in batches; those too large for one go to `large`."""
        for start in range(0, len(digests), BATCH_COUNT):
            for digest, content in self._server.fetch(digests[start : start + BATCH_COUNT]):
                if isinstance(content, int):
                    large.append(digest)
                    continue
                report(len(content))
                yield digest, content

    def open_blob(self, digest: str) -> BlobReader:
        raise InvalidInput(f"open_blob reads a store's own files; {self.uri} is a server")

    def clean_temp(self, older_than: float = 3600.0) -> int:
        self._on_server("clean_temp", "loopline fsck --repair")

    def check(
        self, *, progress: Progress | None = None, on_total: Progress | None = None
    ) -> StoreCheck:
        self._on_server("check", "loopline fsck")

    def repair(self, found: StoreCheck) -> int:
        self._on_server("repair", "loopline fsck --repair")

    def collect_garbage(
        self,
        referenced: Callable[[], set[str]],
        *,
        grace: float = 3600.0,
        dry_run: bool = False,
        repack_above: float = 0.5,
        progress: Progress | None = None,
    ) -> SweepResult:
        self._on_server("collect_garbage", "loopline gc")

    def _on_server(self, operation: str, command: str) -> NoReturn:
        raise InvalidInput(
            f"{operation} cannot run over HTTP: the artifact store {self.uri} is a server's",
            hint=f"run `{command}` on the server, against its own artifact store",
        )

    def _restore(self, items: list[tuple[StoredFile, str]], report: Progress) -> None:
        """Write each file from its blobs, in order: small blobs fetched in batches, large
        ones alone (resumable); each file replaces its destination once complete."""
        blobs = [(n, blob) for n, (stored, _) in enumerate(items) for blob in stored.blobs]
        current: _PartFile | None = None
        try:
            start = 0
            while start < len(blobs):
                batch = _batch(blobs, start)
                start += len(batch)
                fetched = self._server.fetch([blob.hash for _, blob in batch])
                for (number, blob), (_, content) in zip(batch, fetched, strict=True):
                    if current is None or current.number != number:
                        if current is not None:
                            current.finish()
                        current = _PartFile(number, Path(items[number][1]))
                    if isinstance(content, int):
                        self._server.download(blob.hash, current.write)
                    else:
                        current.write(content)
                    report(blob.size)
            if current is not None:
                current.finish()
        finally:
            if current is not None:
                current.drop()

    def _receive(self, source: ArtifactStore, digests: list[str], report: Progress) -> int:
        """Upload `digests` from `source` (which has them; this server just said it lacks
        them); the bytes sent."""
        sent = 0
        with Uploader(self._server, ask=False) as uploader:
            for digest in digests:
                reader = source.open_blob(digest)
                if reader.size <= FRAME_MAX:
                    uploader.add(digest, reader.read())
                else:
                    self._server.upload(digest, reader.size, reader.pieces)
                    sent += reader.size
                report(reader.size)
        return sent + uploader.bytes_added

    @contextlib.contextmanager
    def _boundary(self, action: str, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Turn httpx and file system errors into StoreUnavailable."""
        try:
            yield
        except LooplineError:
            raise
        except (*_TRANSPORT_ERRORS, *also) as exc:
            raise StoreUnavailable(
                f"artifact store {self.uri}: {action} failed: {exc}",
                hint="check that the server is running and reachable (loopline server)",
            ) from exc


def _batch(blobs: list[tuple[int, Blob]], start: int) -> list[tuple[int, Blob]]:
    """The blobs from `start` that one fetch request asks for."""
    end, size = start, 0
    while end < len(blobs) and end - start < BATCH_COUNT and size < BATCH_BYTES:
        size += blobs[end][1].size
        end += 1
    return blobs[start:end]


class _PartFile:
    """A hidden `.part` file beside a destination, which replaces it once finished.

    Made on the first write (or at `finish`), so that a blob the server lacks leaves
    no folder or file behind.
    """

    def __init__(self, number: int, target: Path) -> None:
        self.number = number
        self._target = target
        self._temp = target.with_name(f".{target.name}.{os.urandom(8).hex()}.part")
        self._out: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._out is None:
            self._target.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self._temp, "xb")  # noqa: SIM115 (closed by finish or drop)
        self._out.write(data)

    def finish(self) -> None:
        self.write(b"")
        assert self._out is not None
        self._out.close()
        os.replace(self._temp, self._target)

    def drop(self) -> None:
        """Remove the part file unless it was finished (then it is gone already)."""
        if self._out is not None:
            self._out.close()
            self._temp.unlink(missing_ok=True)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[_PartFile]:
    """A hidden `.part` file beside `target` that replaces it if the block succeeds."""
    part = _PartFile(0, target)
    try:
        yield part
        part.finish()
    finally:
        part.drop()
