"""The fast path of `_json.parse_json`: orjson, with the same strictness, checked on bytes.

The strict parser (the standard library's C scanner with a pairs hook that refuses a
repeated key, then a walk for the nesting depth) costs ~25 µs a row of 30 fields: a
100-row body spent a quarter of its worker's time there (py-spy, wrk at 8 connections).
orjson parses the same body ~6x faster but keeps the last of two equal keys silently.
So, for a body with no backslash at all (hence no escaped quote, no surrogate escape,
every `"` a string delimiter), the checks run on the bytes, each a single C pass:

* repeated keys: a key's closing quote is followed (after whitespace) by its `:`, and no
  other `"` can be (a closing quote of a value is followed by `,` `]` `}`); an opening
  quote may be, for a string that starts with `:`. So with the whitespace deleted, the
  text holds at least as many `":` as keys, exactly as many when no string starts with
  `:`: when the parsed objects hold as many keys as that count, no key was repeated
  (a repeated key is written but not kept); fewer, and the strict parser says which.
  Before that, a cheaper count: when the text holds no more colons than keys at all,
  no key was repeated either;
* nesting: a walk of the parsed containers (lists of objects, the rows of a request, at
  C speed) gives their depth, and counts them: when it found as many objects and arrays
  as the text has `{` and `[`, it saw every one (none was dropped with a repeated key,
  none hides in a string or a row the walk did not enter), so its depth is the depth;
* orjson reads an integer beyond 64 bits as a float, the standard library as an int:
  a run of `LONG_DIGITS` digits or more anywhere goes to the strict parser.

Each check can only decline wrongly, never accept wrongly: brackets, colons and digits
inside strings add to the text's counts, never to the parsed ones. Anything else (a
backslash, a body orjson refuses, NaN literals, huge integers, a repeated key, too deep
a nesting) returns None and the strict parser decides, with its own messages. (Splitting
the body at its quotes to see the text outside strings cost as much as orjson itself.)
"""

from __future__ import annotations

from typing import Any

LONG_DIGITS = 19  # 2**63 has 19 digits
_LONG_MASK = b"\x01" * LONG_DIGITS  # in a digit mask's bytes
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_TEXT = b"1" * LONG_DIGITS  # in a body translated by _DIGITS_AS_ONES
_VECTOR_BYTES = 4096  # from this size on, numpy scans the body
_WHITESPACE = b" \t\n\r"
_DICT = {dict}


def parse_fast(body: bytes, max_depth: int) -> tuple[Any] | None:
    """(value,) for a plain body within `max_depth`, or None when the strict parser must
    decide (it also names what is wrong)."""
    if b"\\" in body:
        return None
    import orjson

    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict and type(value) is not list:
        return None  # a bare scalar: not a request; the strict parser reads it
    long_number, braces, brackets, colons = _scan(body)
    if long_number:
        return None
    keys, objects, arrays, depth = _walk(value, enter_rows=False)
    if (objects, arrays) != (braces, brackets):  # containers inside rows (V2 tensors)
        keys, objects, arrays, depth = _walk(value, enter_rows=True)
    if depth > max_depth or (objects, arrays) != (braces, brackets):
        return None
    if keys == colons:  # no `:` in any string: each one is a key's
        return (value,)
    return (value,) if keys == body.translate(None, _WHITESPACE).count(b'":') else None


def _walk(value: Any, *, enter_rows: bool) -> tuple[int, int, int, int]:
    """Keys, objects, arrays and nesting depth of the containers reached.

    Without `enter_rows`, the rows of a list of objects are counted at C speed and not
    entered: containers inside them are not counted, which the caller notices (its text
    has more brackets than were counted) and walks again, entering them.
    """
    keys = objects = arrays = deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if type(item) is dict:
            keys += len(item)
            objects += 1
            stack.extend(
                (v, depth + 1) for v in item.values() if type(v) is dict or type(v) is list
            )
            continue
        arrays += 1
        if not enter_rows and item and set(map(type, item)) == _DICT:
            keys += sum(map(len, item))
            objects += len(item)
            deepest = max(deepest, depth + 1)
        else:
            stack.extend((v, depth + 1) for v in item if type(v) is dict or type(v) is list)
    return keys, objects, arrays, deepest


def _scan(body: bytes) -> tuple[bool, int, int, int]:
    """Whether a run of LONG_DIGITS digits occurs, and how many `{`, `[` and `:` there are.

    Each is one pass over the bytes: with bytes methods for a small body, with numpy's
    vector compares for a large one (bytes.count and bytes.translate cost 5-10x more per
    byte; numpy costs more per call).
    """
    if len(body) < _VECTOR_BYTES:
        long_number = _LONG_TEXT in body.translate(_DIGITS_AS_ONES)
        return long_number, body.count(b"{"), body.count(b"["), body.count(b":")
    import numpy as np

    text = np.frombuffer(body, dtype=np.uint8)
    long_number = _LONG_MASK in ((text - np.uint8(0x30)) < 10).tobytes()
    braces, brackets, colons = (int(np.count_nonzero(text == b)) for b in (0x7B, 0x5B, 0x3A))
    return long_number, braces, brackets, colons
