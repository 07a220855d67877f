"""The Open Inference Protocol's binary tensor data extension, as Triton and KServe
clients speak it (`tritonclient.http` sends binary tensors by default).

A request with the `Inference-Header-Content-Length: N` header is N bytes of JSON
inference request, then the raw bytes of each input whose `parameters.binary_data_size`
is set, in input order (no `data` in the JSON for those). Values are little-endian and
row-major; a BOOL is one byte; a BYTES element is a 4-byte little-endian length and its
bytes. Outputs asked for in binary (`parameters.binary_data: true` on an output, or
`parameters.binary_data_output: true` on the request) are answered the same way: the
JSON header (the output has `parameters.binary_data_size` instead of `data`), then the
bytes; `Inference-Header-Content-Length` gives the header's length and the body is
`application/octet-stream`.

Framing is checked before any value is read: a header length that is not a whole
number, or passes the body; a tensor's size that is not its datatype times its shape;
sizes that do not add up to the bytes sent. Each is a 400 naming the tensor. Decoded
values then go through the same checks as JSON values (NaN where the column is not
nullable, infinity anywhere: 422), so both encodings accept and refuse the same rows.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from loopline.errors import MalformedRequest
from loopline.serving._redact import clip

if TYPE_CHECKING:
    import numpy as np

HEADER = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
# bytes per value of each fixed-size datatype (numpy's little-endian dtype alongside)
_DTYPES = {
    "BOOL": (1, "|b1"),
    "UINT8": (1, "|u1"),
    "UINT16": (2, "<u2"),
    "UINT32": (4, "<u4"),
    "UINT64": (8, "<u8"),
    "INT8": (1, "|i1"),
    "INT16": (2, "<i2"),
    "INT32": (4, "<i4"),
    "INT64": (8, "<i8"),
    "FP16": (2, "<f2"),
    "FP32": (4, "<f4"),
    "FP64": (8, "<f8"),
}
_LENGTH = struct.Struct("<I")
_HINT = "send the binary tensor data as the Open Inference Protocol's extension describes"


def header_length(value: str) -> int:
    """The JSON header's length in bytes from `Inference-Header-Content-Length`."""
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise MalformedRequest(
            f"the Inference-Header-Content-Length header must be a whole number of bytes, "
            f"got {clip(repr(value))}",
            hint=_HINT,
        )
    return int(text)


def split_body(raw: bytes, length: int) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data that follows it."""
    if length > len(raw):
        raise MalformedRequest(
            f"Inference-Header-Content-Length is {length:,} bytes but the body holds only "
            f"{len(raw):,}",
            hint=_HINT,
        )
    view = memoryview(raw)
    return raw[:length], view[length:]


class BinaryData:
    """The bytes after the JSON header, handed out tensor by tensor in input order."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def take(self, name: str, size: int) -> memoryview:
        """The next `size` bytes, for tensor `name`."""
        end = self._offset + size
        if end > len(self._data):
            raise MalformedRequest(
                f"input tensor '{clip(name)}' declares binary_data_size {size:,}, but only "
                f"{len(self._data) - self._offset:,} bytes of binary data are left",
                field=name,
                hint=_HINT,
            )
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def finish(self) -> None:
        """MalformedRequest when bytes are left over: the sizes do not add up."""
        left = len(self._data) - self._offset
        if left:
            raise MalformedRequest(
                f"{left:,} bytes of binary data follow the last binary input tensor; the "
                "inputs' binary_data_size values do not add up to the body",
                hint=_HINT,
            )


def decode(chunk: memoryview, datatype: str, count: int | None, name: str) -> list[Any]:
    """The values of one tensor's bytes, flat and row-major, as JSON would give them
    (Python ints, floats, bools and strings). `count` is the shape's size (None: too
    large to hold in any body)."""
    if datatype == "BYTES":
        return _strings(chunk, count, name)
    import numpy as np

    width, dtype = _DTYPES[datatype]
    if count is None or len(chunk) != count * width:
        expected = "more" if count is None else f"{count * width:,}"
        raise MalformedRequest(
            f"input tensor '{clip(name)}' has binary_data_size {len(chunk):,}, but its "
            f"shape and datatype {datatype} take {expected} bytes",
            field=name,
            hint=_HINT,
        )
    values: list[Any] = np.frombuffer(chunk, dtype=dtype).tolist()
    return values


def _strings(chunk: memoryview, count: int | None, name: str) -> list[Any]:
    values: list[Any] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if end - offset < _LENGTH.size:
            raise _bad_bytes(name, f"{end - offset} stray bytes after element {len(values)}")
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if size > end - offset:
            raise _bad_bytes(name, f"element {len(values)} declares {size:,} bytes past the end")
        try:
            values.append(str(chunk[offset : offset + size], "utf-8"))
        except UnicodeDecodeError as exc:
            raise _bad_bytes(name, f"element {len(values)} is not valid UTF-8") from exc
        offset += size
    if count is None or len(values) != count:
        expected = "more" if count is None else f"{count:,}"
        raise _bad_bytes(name, f"it holds {len(values):,} elements, its shape {expected}")
    return values


def _bad_bytes(name: str, problem: str) -> MalformedRequest:
    return MalformedRequest(
        f"the BYTES data of input tensor '{clip(name)}' is malformed: {problem}",
        field=name,
        hint="each element is a 4-byte little-endian length, then that many UTF-8 bytes",
    )


def encode(values: np.ndarray[Any, Any], datatype: str) -> bytes:
    """One output tensor's bytes, little-endian and row-major."""
    import numpy as np

    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in values.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=_DTYPES[datatype][1]).tobytes()
