"""Moving blobs to and from a loopline server (server/api/blobs.py), for _http_blobs.py.

- Every request goes through the server's one `RemoteSession` (store/remote/_session.py,
  shared with the metadata store over HTTP): its token, its retries of a request that
  failed in transit (a refused or dropped connection, a timeout, a 502/503/504), its
  reading of error answers. Uploads are idempotent (a blob is named by its digest), so
  a dropped upload of a small blob or a batch is simply sent again.
- A large blob (over `RESUMABLE_MIN`) goes up in one `PUT` with `Content-Range`; after a
  dropped connection the client asks the server how many bytes it kept and sends only
  the rest (`upload_from`). A download resumes where it stopped: with `Range` for one
  blob, from the first blob not yet received for a batch.
- Every byte received is verified: a single blob's BLAKE3 as it streams, each blob of a
  batch as its frame completes. Nothing unverified reaches a caller; the server, for its
  part, stores nothing that does not hash to its digest.
- Bodies stream both ways: a large blob goes up from its file in pieces and comes down
  in pieces into the caller's writer; only batches of small blobs (at most
  `BATCH_BYTES` of them) are held in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from urllib.parse import urlsplit

import blake3
import httpx

from loopline.errors import (
    Conflict,
    CorruptedData,
    InvalidInput,
    LooplineError,
    StoreUnavailable,
)
from loopline.store import _blob_frames as frames
from loopline.store._hashing import hash_bytes
from loopline.store._tls import tls_context
from loopline.store.remote._session import RemoteSession, error_from

ATTEMPTS = 3  # tries in a row that make no progress (a transfer that resumes)
BATCH_BYTES = 32 << 20  # small blobs sent or fetched per request
BATCH_COUNT = 4096  # ... and at most this many of them
DIGESTS_MAX = 10_000  # the server's limit per `missing` or `fetch` request
FRAME_MAX = 16 << 20  # the server's largest blob in a batch
RESUMABLE_MIN = FRAME_MAX  # larger blobs go up in a resumable PUT (one more round trip)
PIECE = 1 << 20  # bytes read from a file per piece of an upload
BUSY_PATIENCE = 90.0  # seconds to wait for another client's upload of the same blob to move
_BUSY_POLL = 0.5  # seconds between two looks at it

Pieces = Callable[[int], Iterable[bytes | memoryview]]
"""A blob's bytes from an offset on (a resumed upload reads its source from there)."""


class Server:
    """The blob routes of one loopline server, over its `RemoteSession`."""

    def __init__(self, uri: str, token: str | None) -> None:
        parts = urlsplit(uri)
        if parts.username is not None or parts.password is not None:
            raise InvalidInput(
                "a server URI must not hold credentials", hint="pass the token as `token`"
            )
        # a large blob may take a while to be read and verified before the first byte
        self.session = RemoteSession(uri, token, timeout=httpx.Timeout(120.0, connect=10.0))
        self.base = self.session.url
        self._plain: httpx.Client | None = None

    def close(self) -> None:
        """Close the connections (the session reopens on its next use)."""
        plain, self._plain = self._plain, None
        self.session.close()
        if plain is not None:
            plain.close()

    def missing(self, digests: list[str]) -> set[str]:
        """The digests the server lacks."""
        lacking: set[str] = set()
        for start in range(0, len(digests), DIGESTS_MAX):
            wanted = {"digests": digests[start:][:DIGESTS_MAX]}
            answer = self.session.call("POST", "/blobs/missing", body=wanted, idempotent=True)
            lacking.update(answer["missing"])
        return lacking

    def exists(self, digest: str) -> bool:
        """Whether the server has the blob (asked as `missing`: an error has a body)."""
        return not self.missing([digest])

    def upload(self, digest: str, size: int, pieces: Pieces) -> None:
        """Send one blob of `size` bytes: small ones in one PUT (sent again whole if the
        connection drops), larger ones resumable (`upload_from`)."""
        if size > RESUMABLE_MIN:
            self.upload_from(digest, size, pieces)
        else:
            headers = {"Content-Length": str(size)}
            self.session.send("PUT", f"/blobs/{digest}", content=_body(pieces, 0), headers=headers)

    def upload_from(self, digest: str, size: int, pieces: Pieces) -> None:
        """PUT one blob with `Content-Range` from the bytes the server already holds.

        The server is asked first (`GET /blobs/{digest}/upload`): an upload this process
        or one that died left unfinished resumes, and one another client is sending is
        waited for (up to `BUSY_PATIENCE` seconds without progress). After a dropped
        connection it is asked again and only the rest is sent. If bytes the server held
        before (someone else's) spoil the digest, the server drops them and the blob is
        sent once more from its start.

        Raises:
            InvalidInput: the bytes sent do not hash to `digest` (the source changed?).
            Conflict: another upload of this blob on the server stopped moving.
            StoreUnavailable: the transfer kept failing without progress.
        """
        kept, stalled, restarted, moved = -1, 0, False, time.monotonic()
        while True:
            state = self.session.call("GET", f"/blobs/{digest}/upload")
            if state["stored"]:
                return
            offset = int(state["offset"])
            if offset > kept:
                stalled, moved = 0, time.monotonic()
            kept = offset
            if state["busy"]:  # another request is sending it: wait for that one to end
                if time.monotonic() - moved > BUSY_PATIENCE:
                    raise Conflict(
                        f"another upload of blob {digest} to {self.base} has not moved for "
                        f"{BUSY_PATIENCE:.0f} s",
                        hint="try again later; the server drops a stalled upload by itself",
                    )
                time.sleep(_BUSY_POLL)
                continue
            problem: LooplineError
            try:
                if self._put_range(digest, offset, size, pieces):
                    return
                problem = StoreUnavailable("the server took fewer bytes than were sent")
            except InvalidInput:
                if not offset or restarted:
                    raise
                restarted = True  # the server dropped what it held: send it all
                continue
            except (StoreUnavailable, Conflict) as exc:  # cut, or another upload began
                problem = exc
            stalled += 1
            if stalled == ATTEMPTS and isinstance(problem, Conflict):
                raise problem
            if stalled == ATTEMPTS:
                raise self._unavailable(
                    f"uploading blob {digest} (the server holds {kept} of {size} bytes)", problem
                ) from problem

    def _put_range(self, digest: str, offset: int, size: int, pieces: Pieces) -> bool:
        """PUT bytes `offset` to the end (none: the server finishes what it holds);
        whether the blob is now stored."""
        span = f"{offset}-{size - 1}" if offset < size else "*"
        headers = {"Content-Range": f"bytes {span}/{size}", "Content-Length": str(size - offset)}
        answer = self.session.send(
            "PUT",
            f"/blobs/{digest}",
            content=_body(pieces, offset),
            headers=headers,
            repeatable=False,
        )
        return answer.status_code == 201

    def send_batch(self, blobs: list[tuple[str, bytes | memoryview]]) -> None:
        """POST small blobs as frames in one body (of a known length: not chunked)."""

        def body() -> Iterator[bytes]:
            for digest, data in blobs:
                yield frames.frame(digest, data)
                yield data if isinstance(data, bytes) else bytes(data)

        length = sum(frames.HEADER.size + len(data) for _, data in blobs)
        self.session.send(
            "POST", "/blobs/batch", content=body, headers={"Content-Length": str(length)}
        )

    def download(self, digest: str, write: Callable[[bytes], object]) -> int:
        """Stream one blob into `write`, resuming with `Range` after a dropped connection,
        verified by BLAKE3 at its end; its size.

        Raises:
            NotFound: the server has no such blob.
            CorruptedData: the bytes received do not hash to `digest`.
            StoreUnavailable: the transfer kept failing without progress.
        """
        hasher = blake3.blake3()
        received, size, stalled, redirects = 0, -1, 0, 0
        url, client = f"/blobs/{digest}", self.session.client
        while received != size:
            before = received
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with client.stream("GET", url, headers=headers) as answer:
                    if answer.status_code == 307 and redirects < ATTEMPTS:
                        # --artifacts direct: from S3, without this server's token
                        url, client = answer.headers["Location"], self._direct()
                        redirects += 1
                        continue
                    if answer.status_code >= 400:
                        answer.read()
                        raise error_from(answer)
                    size = _full_size(answer, received)
                    for piece in answer.iter_bytes():
                        hasher.update(piece)
                        write(piece)
                        received += len(piece)
                size = received if size < 0 else size  # no Content-Length: to its end
                if received != size:
                    raise httpx.RemoteProtocolError("the answer ended early")
            except httpx.TransportError as exc:
                stalled = 0 if received > before else stalled + 1
                if stalled == ATTEMPTS:
                    raise self._unavailable(
                        f"downloading blob {digest} (stopped at byte {received} of {size})",
                        exc,
                        hint="if the server keeps cutting it at the same byte, its copy may be "
                        "corrupt: run `loopline fsck` on the server",
                    ) from exc
        actual = hasher.hexdigest()
        if actual != digest:
            raise CorruptedData(
                f"blob {digest} downloaded from {self.base} hashes to {actual}",
                hint="run `loopline fsck` on the server",
            )
        return received

    def fetch(self, digests: list[str]) -> Iterator[tuple[str, bytes | int]]:
        """`(digest, content)` for each of `digests` in order, each verified; a blob too
        large for a batch comes as `(digest, size)`: download it alone.

        Raises:
            NotFound: the server lacks one (none is yielded then).
            CorruptedData: a blob received does not hash to its digest, or the server
                found its copy corrupt.
        """
        done, stalled = 0, 0
        while done < len(digests):
            before = done
            wanted = digests[done:][:DIGESTS_MAX]
            try:
                with self.session.client.stream(
                    "POST", "/blobs/fetch", json={"digests": wanted}
                ) as answer:
                    if answer.status_code >= 400:
                        answer.read()
                        raise error_from(answer)
                    reader = frames.Reader(answer.iter_bytes())
                    for digest, size, data in frames.read_frames(reader, FRAME_MAX):
                        expected = digests[done]
                        if digest != expected:
                            raise CorruptedData(
                                f"asked {self.base} for blob {expected}, got {digest}"
                            )
                        if len(data) != size:
                            yield digest, size
                        else:
                            _verify(digest, data, self.base)
                            yield digest, data
                        done += 1
                if done < before + len(wanted):
                    raise httpx.RemoteProtocolError("the answer ended early")
            except httpx.TransportError as exc:
                stalled = 0 if done > before else stalled + 1
                if stalled == ATTEMPTS:
                    raise self._unavailable(f"fetching {len(digests)} blobs", exc) from exc

    def _direct(self) -> httpx.Client:
        """A client without this server's token, for pre-signed storage URLs."""
        if self._plain is None:
            self._plain = httpx.Client(
                timeout=self.session.client.timeout, follow_redirects=False, verify=tls_context()
            )
        return self._plain

    def _unavailable(
        self, action: str, exc: Exception, hint: str | None = None
    ) -> StoreUnavailable:
        return StoreUnavailable(
            f"artifact server {self.base}: {action} failed: {type(exc).__name__}: {exc}",
            hint=hint or "check that the server is running and reachable (loopline server)",
        )


class Uploader:
    """Collects blobs and sends those the server lacks in batches (a `ChunkSink`).

    Each batch asks `missing` first (unless the caller just did: `ask=False`), so content
    the server has is never sent, nor copied: blobs are kept as given until then. One
    batch is sent by a background thread while the caller hashes the next, and a
    caller's buffer (put_chunked's) is handed back once the batch holding its chunks has
    gone (`after_written`). Use it as a context manager: leaving waits for the last
    batch and raises its error. `bytes_added` counts what was sent.
    """

    def __init__(self, server: Server, *, ask: bool = True) -> None:
        self._server = server
        self._ask = ask
        self._pending: dict[str, bytes | memoryview] = {}
        self._size = 0
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="loopline-upload")
        self._sending: Future[int] | None = None
        self.bytes_added = 0

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        try:
            if exc is None:
                self.flush()
                self._wait()
            elif self._sending is not None:
                wait([self._sending])  # its buffers come back; its error is moot
        finally:
            self._sender.shutdown()

    def add(self, digest: str, data: bytes | memoryview, address: int | None = None) -> bool:
        if digest in self._pending:
            return False
        if len(data) > FRAME_MAX:  # alone (put_blobs of a large blob)
            if not self._ask or self._server.missing([digest]):
                self._server.upload(digest, len(data), slices(data))
                self.bytes_added += len(data)
            return True
        self._pending[digest] = data
        self._size += len(data)
        if self._size >= BATCH_BYTES or len(self._pending) >= BATCH_COUNT:
            self.flush()
        return True

    def after_written(self, callback: Callable[[], None]) -> None:
        self.flush()
        if self._sending is None:
            callback()
        else:
            self._sending.add_done_callback(lambda _: callback())

    def flush(self) -> None:
        """Hand what is pending to the sender, once the batch before it has gone."""
        if not self._pending:
            return
        batch, self._pending, self._size = self._pending, {}, 0
        self._wait()
        self._sending = self._sender.submit(self._send, batch)

    def _wait(self) -> None:
        if self._sending is not None:
            self.bytes_added += self._sending.result()
            self._sending = None

    def _send(self, batch: dict[str, bytes | memoryview]) -> int:
        lacking = self._server.missing(list(batch)) if self._ask else batch
        blobs = [(digest, data) for digest, data in batch.items() if digest in lacking]
        if blobs:
            self._server.send_batch(blobs)
        return sum(len(data) for _, data in blobs)


def slices(data: bytes | memoryview) -> Pieces:
    """`data` from an offset on, in pieces of `PIECE` bytes (no copy of the whole)."""
    view = memoryview(data)
    return lambda offset: (view[at : at + PIECE] for at in range(offset, len(view), PIECE))


def _body(pieces: Pieces, offset: int) -> Callable[[], Iterator[bytes]]:
    """A request body made afresh for each attempt, from `offset` on."""
    return lambda: (bytes(piece) for piece in pieces(offset))


def _full_size(answer: httpx.Response, start: int) -> int:
    """The whole blob's size, from a 206's `Content-Range` or a 200's `Content-Length`."""
    if start:
        if answer.status_code != 206:
            raise CorruptedData(f"the server ignored a Range request ({answer.status_code})")
        total = answer.headers.get("Content-Range", "").rpartition("/")[2]
        if not total.isdigit():
            raise CorruptedData("the server answered a Range request without its total size")
        return int(total)
    return int(answer.headers.get("Content-Length", "-1"))


def _verify(digest: str, data: bytes, where: str) -> None:
    actual = hash_bytes(data)
    if actual != digest:
        raise CorruptedData(
            f"blob {digest} downloaded from {where} hashes to {actual}",
            hint="run `loopline fsck` on the server",
        )
