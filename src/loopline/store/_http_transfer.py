"""Moving blobs to and from a loopline server (server/api/blobs.py), for _http_blobs.py.

- Every request that fails in transit (a refused or dropped connection, a timeout) is
  tried again, up to `ATTEMPTS` times in a row without progress. Uploads are idempotent
  (a blob is named by its digest), so a dropped upload is simply sent again; a dropped
  download resumes where it stopped: with `Range` for one blob, from the first blob not
  yet received for a batch.
- Every byte received is verified: a single blob's BLAKE3 as it streams, each blob of a
  batch as its frame completes. Nothing unverified reaches a caller.
- Bodies stream both ways: a large blob goes up from its file in pieces and comes down
  in pieces into the caller's writer; only batches of small blobs (at most
  `BATCH_BYTES` of them) are held in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

import blake3
import httpx

from loopline._version import __version__
from loopline.errors import CorruptedData, InvalidInput, LooplineError, StoreUnavailable
from loopline.store import _blob_frames as frames
from loopline.store._hashing import hash_bytes
from loopline.store._tls import tls_context

ATTEMPTS = 3  # tries of one request in a row that make no progress
BATCH_BYTES = 32 << 20  # small blobs sent or fetched per request
BATCH_COUNT = 4096  # ... and at most this many of them
DIGESTS_MAX = 10_000  # the server's limit per `missing` or `fetch` request
FRAME_MAX = 16 << 20  # the server's largest blob in a batch
PIECE = 1 << 20  # bytes read from a file per piece of an upload

Content = Callable[[], Iterable[bytes] | bytes]
"""Makes a request body afresh (each attempt of an upload reads its source again)."""


class Server:
    """The blob routes of one loopline server, over one pooled httpx client."""

    def __init__(self, uri: str, token: str | None) -> None:
        parts = urlsplit(uri)
        if parts.username is not None or parts.password is not None:
            raise InvalidInput(
                "a server URI must not hold credentials", hint="pass the token as `token`"
            )
        if not parts.hostname or parts.query or parts.fragment:
            raise InvalidInput(f"not a loopline server URI: {uri!r}", hint="http(s)://host:port")
        self.base = uri.rstrip("/")
        self._blobs = f"{self.base}/api/v1/blobs"
        self._headers = {"User-Agent": f"loopline/{__version__}"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client: httpx.Client | None = None
        self._plain: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def _http(self) -> httpx.Client:
        """The pooled client, made on first use and again after `close()` (the stores a
        project closes are reopened by their next use)."""
        with self._lock:
            if self._client is None:
                timeout = httpx.Timeout(120.0, connect=10.0)
                self._client = httpx.Client(
                    headers=self._headers,
                    timeout=timeout,
                    follow_redirects=False,
                    verify=tls_context(),
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, plain, self._client, self._plain = self._client, self._plain, None, None
        for opened in (client, plain):
            if opened is not None:
                opened.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Content | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A request to `/api/v1/blobs{path}`, tried again after a transport failure;
        an error answer raised as the LooplineError its body names."""
        for attempt in range(1, ATTEMPTS + 1):
            body = None if content is None else content()
            try:
                response = self._http.request(
                    method, self._blobs + path, json=json, content=body, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise self._unavailable(f"{method} {path}", exc) from exc
                continue
            if response.status_code >= 400:
                raise answered_error(response)
            return response
        raise AssertionError("unreachable")

    def missing(self, digests: list[str]) -> set[str]:
        """The digests the server lacks."""
        lacking: set[str] = set()
        for start in range(0, len(digests), DIGESTS_MAX):
            answer = self.call("POST", "/missing", json={"digests": digests[start:][:DIGESTS_MAX]})
            lacking.update(_json(answer)["missing"])
        return lacking

    def exists(self, digest: str) -> bool:
        """Whether the server has the blob (asked as `missing`: an error has a body)."""
        return not self.missing([digest])

    def upload(self, digest: str, content: Content) -> None:
        """PUT one blob; `content` makes its body (again for each attempt)."""
        self.call("PUT", f"/{digest}", content=content)

    def send_batch(self, blobs: list[tuple[str, bytes | memoryview]]) -> None:
        """POST small blobs as frames in one body (of a known length: not chunked)."""

        def body() -> Iterator[bytes]:
            for digest, data in blobs:
                yield frames.frame(digest, data)
                yield data if isinstance(data, bytes) else bytes(data)

        length = sum(frames.HEADER.size + len(data) for _, data in blobs)
        self.call("POST", "/batch", content=body, headers={"Content-Length": str(length)})

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
        url, client = f"{self._blobs}/{digest}", self._http
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
                        raise answered_error(answer)
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
                with self._http.stream(
                    "POST", f"{self._blobs}/fetch", json={"digests": wanted}
                ) as answer:
                    if answer.status_code >= 400:
                        answer.read()
                        raise answered_error(answer)
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
                timeout=self._http.timeout, follow_redirects=False, verify=tls_context()
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
                whole = bytes(data)
                self._server.upload(digest, lambda: whole)
                self.bytes_added += len(whole)
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


def answered_error(answer: httpx.Response) -> LooplineError:
    """The LooplineError an error answer's body names (the remote client's one mapping)."""
    from loopline.store.remote._session import error_from

    return error_from(answer)


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


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError as exc:
        raise StoreUnavailable(f"the artifact server answered something not JSON: {exc}") from exc
