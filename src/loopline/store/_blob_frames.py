"""The framing of many blobs in one HTTP body: batch uploads and batch downloads.

One request per blob costs a round trip each, which for 20,000 small files is most of
the time a push takes; so small blobs travel many to a body, each as a frame:

    32-byte digest, u64 little-endian size, then `size` bytes of content

In a download, two sizes are markers instead: `TOO_LARGE` (followed by the blob's real
size as a u64, no content: fetch it alone, with `GET /blobs/{digest}` and `Range`) and
`FAILED` (followed by a u32 length and that many bytes of a JSON error body, then the
stream ends: the server found the blob corrupt after the response had started).
"""

from __future__ import annotations

import json
import struct
from collections import deque
from collections.abc import Iterable, Iterator

from loopline.errors import ERROR_TYPES, LooplineError, MalformedRequest

HEADER = struct.Struct("<32sQ")
_SIZE = struct.Struct("<Q")
_LENGTH = struct.Struct("<I")
TOO_LARGE = (1 << 64) - 2
FAILED = (1 << 64) - 1


def frame(digest: str, data: bytes | memoryview) -> bytes:
    """One blob's frame header; the content follows it."""
    return HEADER.pack(bytes.fromhex(digest), len(data))


def too_large(digest: str, size: int) -> bytes:
    """The frame that says a blob is too large for a batch (a download)."""
    return HEADER.pack(bytes.fromhex(digest), TOO_LARGE) + _SIZE.pack(size)


def failed(digest: str, error: LooplineError) -> bytes:
    """The frame that ends a download with an error."""
    body = json.dumps({"error": error.to_dict()}).encode()
    return HEADER.pack(bytes.fromhex(digest), FAILED) + _LENGTH.pack(len(body)) + body


class Reader:
    """Reads exact byte counts from an iterator of byte strings (a body's pieces)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._held: deque[memoryview] = deque()
        self._size = 0

    def read(self, count: int) -> bytes:
        """Exactly `count` bytes; fewer only at the end of the body."""
        while self._size < count:
            piece = next(self._pieces, None)
            if piece is None:
                break
            if piece:
                self._held.append(memoryview(piece))
                self._size += len(piece)
        parts = []
        wanted = min(count, self._size)
        self._size -= wanted
        while wanted:
            first = self._held[0]
            if len(first) <= wanted:
                parts.append(self._held.popleft())
                wanted -= len(first)
            else:
                parts.append(first[:wanted])
                self._held[0] = first[wanted:]
                wanted = 0
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)


def read_frames(
    reader: Reader, max_size: int, *, markers: bool = True
) -> Iterator[tuple[str, int, bytes]]:
    """`(digest, size, content)` of each frame until the body ends; a `TOO_LARGE` frame
    gives its size and no content. Without `markers` (an upload), both markers count
    as sizes over the limit.

    Raises:
        MalformedRequest: a frame cut short, or a blob over `max_size` bytes.
        LooplineError: a `FAILED` frame's error, as its own class.
    """
    while header := reader.read(HEADER.size):
        if len(header) < HEADER.size:
            raise MalformedRequest("the body ends inside a blob's frame header")
        raw, size = HEADER.unpack(header)
        digest = raw.hex()
        if size == TOO_LARGE and markers:
            yield digest, _SIZE.unpack(_exactly(reader, _SIZE.size))[0], b""
        elif size == FAILED and markers:
            (length,) = _LENGTH.unpack(_exactly(reader, _LENGTH.size))
            raise error_from_body(_exactly(reader, length))
        elif size > max_size:
            raise MalformedRequest(
                f"blob {digest} in the body is {size} bytes; at most {max_size} per frame",
                hint=f"send a larger blob alone with PUT /api/v1/blobs/{digest}",
            )
        else:
            yield digest, size, _exactly(reader, size)


def _exactly(reader: Reader, count: int) -> bytes:
    data = reader.read(count)
    if len(data) < count:
        raise MalformedRequest(f"the body ends {count - len(data)} bytes early, inside a frame")
    return data


def error_from_body(body: bytes) -> LooplineError:
    """The error an HTTP error body `{"error": {"type", "message", "hint"}}` names."""
    try:
        detail = json.loads(body)["error"]
        cls = ERROR_TYPES.get(str(detail.get("type")), LooplineError)
        return cls(str(detail["message"]), hint=detail.get("hint"))
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace")
        return LooplineError(f"the server answered an error without a loopline body: {text}")
