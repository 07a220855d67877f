"""Request bodies in, JSON responses out: size limits, strict parsing, orjson rendering.

Parsing is strict because a prediction request is untrusted input:

* only a JSON content type is read (nothing else is ever deserialized: no form parsing,
  no pickle);
* the body is refused with 413 before parsing when its Content-Length, or the bytes
  actually streamed, pass the limit;
* it must be UTF-8, must not repeat a key in an object (orjson keeps the last value
  silently, so the standard library's C scanner parses, with a pairs hook that checks),
  and must not nest deeper than `max_depth`;
* no string or key may hold a lone UTF-16 surrogate (`"\\ud800"`): JSON's grammar allows
  the escape, but the text is not Unicode, so no response, log file or database could
  hold it; refused here (400, naming where it is), it cannot fail later, off the
  response path. Only a body holding a surrogate escape is searched;
* the `NaN` and `Infinity` literals parse to floats, so that the signature check can
  name the field they are in (422) instead of failing the whole body (400).

The standard library parses a one-row request in ~15 µs; a plain body (no backslash)
is parsed by orjson with the same checks done on its bytes (see `_json_fast`); orjson
renders responses.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from loopline.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from loopline.serving._redact import clip
from loopline.serving.online._json_fast import parse_fast

if TYPE_CHECKING:
    from starlette.responses import Response

MAX_DEPTH = 32
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# `\uD800`..`\uDFFF`: either half of a pair (fine together) or a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_CONSTANTS.__getitem__)


def check_content_type(content_type: str | None) -> None:
    """UnsupportedMediaType unless the header names JSON (`application/json`, `...+json`)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"expected a JSON body (Content-Type: application/json), got "
            f"{content_type if content_type else 'no Content-Type'}",
            hint="send the body as JSON with Content-Type: application/json",
        )


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int
) -> bytes:
    """The whole body, refusing it (413) as soon as it is known to pass `max_bytes`."""
    if content_length is not None:
        if not content_length.strip().isdigit():
            raise MalformedRequest(f"invalid Content-Length header {content_length!r}")
        if int(content_length) > max_bytes:
            raise _too_large(int(content_length), max_bytes)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(size, max_bytes, at_least=True)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {'over ' if at_least else ''}{size:,} bytes; this server "
        f"accepts at most {limit:,}",
        hint="split the rows over several requests",
    )


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of a body; MalformedRequest (400) says what is wrong with it."""
    if not body or body.isspace():
        raise MalformedRequest("the request body is empty; expected a JSON object")
    fast = parse_fast(body, max_depth)  # orjson, same checks on the bytes (see _json_fast)
    if fast is not None:
        return fast[0]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"the body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        value = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise MalformedRequest(
            f"the key {clip(exc.key)!r} appears twice in one JSON object",
            hint="send each field once",
        ) from exc
    except json.JSONDecodeError as exc:
        raise MalformedRequest(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise _too_deep(max_depth) from exc
    except ValueError as exc:  # e.g. an integer literal of more than 4,300 digits
        raise MalformedRequest(f"invalid JSON: {exc}") from exc
    if _nested_deeper(value, max_depth):
        raise _too_deep(max_depth)
    if b"\\u" in body and _SURROGATE_ESCAPE.search(body) is not None:
        _check_unicode(value)
    return value


def _check_unicode(value: Any) -> None:
    """MalformedRequest naming the first string or key that holds a lone surrogate.

    Each value carries its trail, (parent trail, key or index), not its path as text: a
    long key above many values must not be copied once per value.
    """
    stack: list[tuple[Any, _Trail]] = [(value, None)]
    while stack:
        item, trail = stack.pop()
        kind = type(item)
        if kind is str:
            if not _is_unicode(item):
                raise _not_unicode("the string", _where(trail))
        elif kind is dict:
            for key in item:
                if not _is_unicode(key):
                    raise _not_unicode("a key", _where(trail))
            stack.extend((item[key], (trail, key)) for key in reversed(item))
        elif kind is list:
            stack.extend((item[i], (trail, i)) for i in range(len(item) - 1, -1, -1))


_Trail = tuple[Any, str | int] | None


def _where(trail: _Trail) -> str:
    """A trail as a path: 'inputs[0].name' ('' for the top level)."""
    steps: list[str] = []
    while trail is not None:
        trail, step = trail
        steps.append(f"[{step}]" if type(step) is int else f".{step}")
    return "".join(reversed(steps)).removeprefix(".")


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(what: str, where: str) -> MalformedRequest:
    place = f"at '{clip(where)}'" if where else "at the top level"
    if what == "a key":
        place = f"in the object at '{clip(where)}'" if where else "in the top-level object"
    return MalformedRequest(
        f"{what} {place} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), "
        "which is not valid Unicode text",
        field=where or None,
        hint="send text as valid UTF-8; a character outside the BMP is a surrogate pair",
    )


def _too_deep(max_depth: int) -> MalformedRequest:
    return MalformedRequest(f"the JSON body nests arrays and objects deeper than {max_depth}")


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion)."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
    return False


def _plain(value: Any) -> Any:
    """What orjson cannot serialize by itself: numpy scalars and object arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """`content` as JSON bytes (orjson; numpy arrays and scalars become lists and numbers)."""
    import orjson

    return orjson.dumps(content, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)


@functools.cache
def json_response_class() -> type[Response]:
    """The service's response class: JSON rendered by orjson, in one body."""
    from starlette.responses import JSONResponse

    # A JSONResponse subclass, so that FastAPI documents response models as JSON.
    class OrjsonResponse(JSONResponse):
        """A JSON response rendered by orjson (numpy values converted)."""

        media_type = "application/json"

        def render(self, content: Any) -> bytes:
            return dumps(content)

    return OrjsonResponse
