"""Blobs over HTTP: content-addressed, streamed, verified on both ends, resumable.

    POST /blobs/missing     which of these digests the server lacks (reader)
    PUT  /blobs/{digest}    one blob, streamed; stored only if it hashes to `digest` (writer)
                            with `Content-Range: bytes START-END/TOTAL`: part of a resumable
                            upload, `bytes */TOTAL`: finish the one held (store/_uploads.py)
    GET  /blobs/{digest}/upload   how many bytes of a resumable upload the server holds
    GET  /blobs/{digest}    one blob, streamed and verified as read; `Range` for resuming
    HEAD /blobs/{digest}    its size (`Content-Length`) and `ETag` (the digest)
    (GET answers 307 to a pre-signed S3 URL with `--artifacts direct` and an S3 store)
    POST /blobs/batch       many small blobs in one body (frames: store/_blob_frames.py)
    POST /blobs/fetch       many small blobs in one answer, same frames

A client asks `missing` first and sends only what the server lacks, so a push of
unchanged data sends digests, never content. A single blob goes to a temp file and is
stored only once it has hashed to its digest; a batch is read frame by frame into a new
pack, each blob checked before it is added, and a bad one discards the pack: either way
a wrong digest answers 422 and stores nothing.

A large blob goes up resumably: the client asks `GET .../upload` for the `offset` the
server holds (0 for a new upload), then PUTs the bytes from there with `Content-Range`.
A dropped connection keeps what arrived, so the client asks again and sends only the
rest. A range must start at the offset held (else 409), may not run past its total or
be longer than it says (400); the total must fit on the server's disk (else 413); one
request at a time adds to an upload (another gets 409, and `busy` says so); the
blob is stored once the last byte has come and the whole has hashed to its digest
(else 422, and the bytes held are dropped). A request that sends nothing for
`UPLOAD_IDLE` seconds is cut, so a vanished client does not hold an upload for long.

A download holds back its last
piece until the blob has verified (store/_blob_io.py), so a corrupt blob ends in a cut
connection, or a `FAILED` frame in a batch, never in a complete wrong answer.

Uploads are never handed out as pre-signed S3 URLs, even in direct mode: S3 cannot check
a BLAKE3 digest, so a writer could then store any bytes under any digest; every upload
goes through this server's check.

Every digest in a path is checked against 64 lowercase hex characters (fullmatch)
before anything touches the store, so no spelling of a path reaches the disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import blake3
from anyio import from_thread
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse

from loopline.errors import (
    InvalidInput,
    LooplineError,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
)
from loopline.server._permissions import Role, requires
from loopline.server.app import stores_of
from loopline.store import _blob_frames as frames
from loopline.store import _uploads

if TYPE_CHECKING:
    from loopline.project import Stores

router = APIRouter(tags=["blobs"])

DIGESTS_MAX = 10_000  # digests per `missing` or `fetch` request
FRAME_MAX = 16 << 20  # the largest blob in a batch; larger ones travel alone
BATCH_MAX = 256 << 20  # bytes per batch upload body
IN_MEMORY_MAX = 16 << 20  # blobs up to this size are read whole and verified before sending
SIGNED_FOR = 3600  # seconds a pre-signed download URL stays valid (--artifacts direct)
UPLOAD_IDLE = 60.0  # seconds a resumable upload waits for its next bytes before it is cut
_WRITE_PIECE = 1 << 20  # upload bytes gathered before a write (in a worker thread)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE = re.compile(r"bytes (?:(\d{1,19})-(\d{1,19})|\*)/(\d{1,19})")
_OCTETS = "application/octet-stream"


class RangeNotSatisfiable(InvalidInput):
    """A `Range` that starts past the blob's end."""

    http_status = 416


class Digests(BaseModel):
    """A list of blob digests (64 lowercase hex characters each)."""

    model_config = ConfigDict(extra="forbid")
    digests: list[str] = Field(max_length=DIGESTS_MAX)


def checked(digest: str) -> str:
    """`digest` if it is 64 lowercase hex characters; MalformedRequest (400) otherwise."""
    if not _DIGEST.fullmatch(digest):
        raise MalformedRequest(
            f"not a blob digest: {digest[:80]!r}",
            hint="expected 64 lowercase hexadecimal characters (a BLAKE3 hash)",
        )
    return digest


@router.post("/blobs/missing", dependencies=[requires(Role.READER)])
def missing(body: Digests, request: Request) -> dict[str, list[str]]:
    """The digests in the list that the server has neither loose nor packed."""
    digests = [checked(digest) for digest in body.digests]
    return {"missing": sorted(stores_of(request).artifacts.missing(digests))}


@router.put(
    "/blobs/{digest}", status_code=201, response_model=None, dependencies=[requires(Role.WRITER)]
)
async def put_blob(
    digest: str,
    request: Request,
    content_range: str | None = Header(None, alias="Content-Range"),
) -> dict[str, Any] | Response:
    """Store the request body as the blob `digest`, once it has hashed to it; with
    `Content-Range`, add it to the resumable upload of `digest` (module docstring)."""
    digest = checked(digest)
    if content_range is not None:
        return await _put_range(digest, request, content_range)
    opened = stores_of(request)
    artifacts = opened.artifacts
    with _upload_file(_folder(opened)) as (temp, out):
        hasher = blake3.blake3()
        size = 0
        async for piece in _pieces(request):
            await run_in_threadpool(_write_hashing, out, hasher, piece)
            size += len(piece)
        out.close()
        actual = hasher.hexdigest()
        if actual != digest:
            raise InvalidInput(
                f"the body of PUT /blobs/{digest} hashes to {actual}; nothing was stored",
                hint="send the blob's exact bytes under its BLAKE3 digest",
            )
        await run_in_threadpool(_uploads.store_verified, artifacts, temp, digest, size)
    return {"hash": digest, "size": size}


@router.get("/blobs/{digest}/upload", dependencies=[requires(Role.WRITER)])
def upload_state(digest: str, request: Request) -> dict[str, Any]:
    """How many bytes of a resumable upload of `digest` the server holds (`offset`: send
    from there), whether a request is adding to them now (`busy`: wait for it to end),
    and whether the blob is stored already (`stored`: nothing to send)."""
    digest = checked(digest)
    opened = stores_of(request)
    state = _uploads.upload_state(_folder(opened), digest)
    stored = opened.artifacts.exists(digest)
    return {"hash": digest, "offset": state.offset, "busy": state.busy, "stored": stored}


async def _put_range(digest: str, request: Request, header: str) -> Response:
    """Add the body to the upload of `digest` at the range `header` names; store the blob
    once its last byte has come (201), else answer the offset now held (202)."""
    start, end, total = _content_range(header)
    opened = stores_of(request)
    upload = await run_in_threadpool(_uploads.open_upload, _folder(opened), digest, start, total)
    try:
        async for piece in _pieces(request, idle=UPLOAD_IDLE):
            if upload.offset + len(piece) > end:
                await run_in_threadpool(upload.cut_back, start)
                raise MalformedRequest(
                    f"the body is longer than its Content-Range {header!r}; none of it was kept"
                )
            await run_in_threadpool(upload.write, piece)
        if upload.offset < total:
            return JSONResponse({"hash": digest, "offset": upload.offset}, 202)
        blob = await run_in_threadpool(upload.finish, opened.artifacts)
    finally:
        await run_in_threadpool(upload.close)
    return JSONResponse({"hash": digest, "size": blob.size}, 201)


@router.post("/blobs/batch", dependencies=[requires(Role.WRITER)])
async def put_batch(request: Request) -> dict[str, int]:
    """Store the blobs framed in the body (see store/_blob_frames.py), each verified;
    a blob that does not hash to its digest answers 422 and its pack is not kept."""
    artifacts = stores_of(request).artifacts
    pieces = _pieces(request)

    async def next_piece() -> bytes:
        return await anext(pieces, b"")

    def body() -> Iterator[bytes]:  # read from the worker thread that stores the blobs
        size = 0
        while piece := from_thread.run(next_piece):
            size += len(piece)
            if size > BATCH_MAX:
                raise PayloadTooLarge(f"a batch body is at most {BATCH_MAX} bytes")
            yield piece

    return await run_in_threadpool(_store_batch, artifacts, body())


@router.post("/blobs/fetch", dependencies=[requires(Role.READER)])
def fetch(body: Digests, request: Request) -> StreamingResponse:
    """The blobs listed, in order, as frames; a blob over the frame limit comes as a
    `TOO_LARGE` frame with its size (fetch it alone); an unknown one answers 404."""
    artifacts = stores_of(request).artifacts
    readers = [artifacts.open_blob(checked(digest)) for digest in body.digests]

    def frames_of() -> Iterator[bytes]:
        for reader in readers:
            if reader.size > FRAME_MAX:
                yield frames.too_large(reader.digest, reader.size)
                continue
            try:
                data = reader.read()
            except LooplineError as exc:
                yield frames.failed(reader.digest, exc)
                return
            yield frames.frame(reader.digest, data) + data

    return StreamingResponse(frames_of(), media_type=_OCTETS)


@router.get("/blobs/{digest}", dependencies=[requires(Role.READER)])
def get_blob(
    digest: str, request: Request, wanted: str | None = Header(None, alias="Range")
) -> Response:
    """The blob's bytes (or the one `Range` asked for: 206), verified as they are read;
    with `--artifacts direct` and an S3 store, a loose blob answers 307 to a pre-signed
    S3 URL instead (the client verifies what it downloads there)."""
    artifacts = stores_of(request).artifacts
    if getattr(request.app.state, "artifacts_mode", "proxy") == "direct":
        url = artifacts.download_url(checked(digest), expires=SIGNED_FOR)
        if url is not None:
            return Response(None, 307, {"Location": url, "ETag": f'"{digest}"'})
    reader = artifacts.open_blob(checked(digest))
    start, end = _byte_range(wanted, reader.size)
    headers = _headers(digest, end - start)
    status = 200
    if (start, end) != (0, reader.size):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{reader.size}"
    if reader.size <= IN_MEMORY_MAX:
        data = reader.read()[start:end]  # CorruptedData here is still a 500 with a body
        return Response(data, status, headers, media_type=_OCTETS)
    return StreamingResponse(reader.pieces(start, end), status, headers, media_type=_OCTETS)


@router.head("/blobs/{digest}", dependencies=[requires(Role.READER)])
def head_blob(digest: str, request: Request) -> Response:
    """The blob's size and ETag, nothing read."""
    reader = stores_of(request).artifacts.open_blob(checked(digest))
    return Response(None, 200, _headers(digest, reader.size), media_type=_OCTETS)


def _headers(digest: str, length: int) -> dict[str, str]:
    return {"ETag": f'"{digest}"', "Accept-Ranges": "bytes", "Content-Length": str(length)}


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """`(start, end)` of the one range `header` asks for; the whole blob without one.

    A header this server does not parse (several ranges, other units) is ignored, as
    RFC 9110 allows; one that starts past the end answers 416.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return 0, size
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last `last` bytes
        return max(0, size - int(last)), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise RangeNotSatisfiable(f"range {header!r} is outside the blob's {size} bytes")
    return start, end


async def _pieces(request: Request, *, idle: float | None = None) -> AsyncIterator[bytes]:
    """The request body in pieces of about `_WRITE_PIECE` bytes. If the connection drops
    (or, with `idle`, sends nothing for that many seconds) the bytes that came are yielded
    before the error: a resumable upload keeps them."""
    gathered: list[bytes] = []
    size = 0
    stream = request.stream()
    try:
        while True:
            with anyio.fail_after(idle):
                piece = await anext(stream, None)
            if piece is None:
                break
            gathered.append(piece)
            size += len(piece)
            if size >= _WRITE_PIECE:
                yield b"".join(gathered)
                gathered, size = [], 0
    except (ClientDisconnect, TimeoutError) as exc:
        if gathered:
            yield b"".join(gathered)
        if isinstance(exc, TimeoutError):
            raise RequestTimeout(f"the body sent nothing for {idle} seconds") from None
        raise MalformedRequest("the connection closed before the body ended") from None
    if gathered:
        yield b"".join(gathered)


def _write_hashing(out: BinaryIO, hasher: Any, piece: bytes) -> None:
    hasher.update(piece)
    out.write(piece)


@contextlib.contextmanager
def _upload_file(folder: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A temp file for a whole upload in `folder`, removed afterwards whatever happens
    (made as the store's own files are, not private as mkstemp's: it may become a blob)."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f"loopline-upload-{uuid.uuid4().hex}.part"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield temp, out
    finally:
        temp.unlink(missing_ok=True)


def _folder(opened: Stores) -> Path:
    """Where this server keeps uploads in progress (store/_uploads.py)."""
    return _uploads.upload_folder(opened.artifacts, opened.settings.state_dir)


def _content_range(header: str) -> tuple[int, int, int]:
    """`(start, end, total)` of `bytes FIRST-LAST/TOTAL` (end = LAST + 1), or of
    `bytes */TOTAL` (start = end = total: finish the upload held)."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise MalformedRequest(
            f"Content-Range {header[:80]!r} is not bytes FIRST-LAST/TOTAL",
            hint="e.g. `bytes 1048576-2097151/4194304`, or `bytes */4194304` to finish",
        )
    first, last, whole = match.groups()
    total = int(whole)
    if first is None:
        return total, total, total
    start, end = int(first), int(last) + 1
    if not start < end <= total:
        raise MalformedRequest(
            f"Content-Range {header!r} is not a range of its total: FIRST <= LAST < TOTAL"
        )
    return start, end, total


def _store_batch(artifacts: Any, body: Iterator[bytes]) -> dict[str, int]:
    """Store the frames of `body` as they arrive (nothing is kept if one is bad)."""
    count = 0

    def blobs() -> Iterator[tuple[str, bytes]]:
        nonlocal count
        reader = frames.Reader(body)
        for digest, _, data in frames.read_frames(reader, FRAME_MAX, markers=False):
            count += 1
            yield checked(digest), data

    stored = artifacts.put_blobs(blobs())
    return {"blobs": count, "bytes_stored": stored}
