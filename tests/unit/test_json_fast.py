"""The orjson fast path of request parsing answers exactly as the strict parser does.

For any JSON text, `parse_fast` either returns the value the standard library's strict
parser returns (same types: an int stays an int), or declines (None) and leaves the
strict parser to decide; it never accepts a repeated key or too deep a nesting.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.errors import MalformedRequest
from loopline.serving.online import _json_fast
from loopline.serving.online._json import _DECODER, _nested_deeper, parse_json
from loopline.serving.online._json_fast import LONG_DIGITS, parse_fast

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=40,
)
separators = st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : "), (",", ": ")])


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=400)
@given(value=values, seps=separators, ascii_only=st.booleans())
def test_the_fast_path_returns_what_the_strict_parser_returns(
    value: Any, seps: tuple[str, str], ascii_only: bool
) -> None:
    body = json.dumps(value, separators=seps, ensure_ascii=ascii_only).encode()
    fast = parse_fast(body, 32)
    if fast is not None:
        assert _same(fast[0], _DECODER.decode(body.decode()))


@settings(max_examples=300)
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from("abcdef"), scalars, min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    ),
    which=st.integers(min_value=0, max_value=5),
)
def test_a_repeated_key_is_never_accepted(rows: list[dict[str, Any]], which: int) -> None:
    row = rows[which % len(rows)]
    key = next(iter(row))
    texts = [json.dumps(r)[1:-1] for r in rows]
    texts[which % len(rows)] += f', "{key}": 1'
    body = ('{"inputs": [' + ", ".join("{" + t + "}" for t in texts) + "]}").encode()
    assert parse_fast(body, 32) is None
    with pytest.raises(MalformedRequest, match="appears twice"):
        parse_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 12345678901234567890123}',  # an int beyond 64 bits stays an int
        b'{"a": NaN}',
        b'{"a": "\\ud800"}',
        b'{"a": 1e400}',
        b"[" * 40 + b"]" * 40,
        b'{"a": "x", "b": {"a": 1, "a": 2}}',
        b"\xef\xbb\xbf{}",
        b'"just a string"',
    ],
)
def test_bodies_the_fast_path_leaves_to_the_strict_parser(body: bytes) -> None:
    assert parse_fast(body, 32) is None


def test_an_int_beyond_64_bits_is_still_an_int() -> None:
    assert parse_json(b'{"a": 12345678901234567890123}') == {"a": 12345678901234567890123}


# Keys and strings full of what the byte checks count: colons, brackets, digits, spaces.
tricky_text = st.text(alphabet=":{}[] \t\n1234567890ab", max_size=6)
tricky = st.recursive(
    scalars | tricky_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, min_size=1, max_size=4)
    ),
    max_leaves=30,
)
spaces = st.sampled_from(["", " ", "\t", "\n ", "\r\n"])


def _dumps_with_repeat(value: Any, path: list[int], space: str) -> tuple[str, bool]:
    """JSON text of `value` with, in the object that `path` picks, its first key written
    a second time (with its own value); True when a key was repeated."""
    if isinstance(value, dict) and value:
        pick = path[0] % (len(value) + 1) if path else 0
        items = list(value.items())
        if pick == len(items) or not path:
            key, first = items[0]
            text = ", ".join(f"{json.dumps(k)}{space}:{space}{json.dumps(v)}" for k, v in items)
            return "{" + text + f", {json.dumps(key)}{space}:{space}{json.dumps(first)}" + "}", True
        parts, repeated = [], False
        for index, (key, item) in enumerate(items):
            inner, did = (
                _dumps_with_repeat(item, path[1:], space)
                if index == pick
                else (json.dumps(item), False)
            )
            repeated |= did
            parts.append(f"{json.dumps(key)}{space}:{space}{inner}")
        return "{" + ", ".join(parts) + "}", repeated
    if isinstance(value, list) and value:
        pick = path[0] % len(value) if path else 0
        parts, repeated = [], False
        for index, item in enumerate(value):
            inner, did = (
                _dumps_with_repeat(item, path[1:], space)
                if index == pick
                else (json.dumps(item), False)
            )
            repeated |= did
            parts.append(inner)
        return "[" + ", ".join(parts) + "]", repeated
    return json.dumps(value), False


@settings(max_examples=500, deadline=None)
@given(
    value=tricky,
    path=st.lists(st.integers(min_value=0, max_value=9), max_size=6),
    space=spaces,
    depth=st.integers(min_value=1, max_value=6),
)
def test_tricky_keys_and_strings_never_fool_the_byte_checks(
    value: Any, path: list[int], space: str, depth: int
) -> None:
    text, repeated = _dumps_with_repeat(value, path, space)
    body = text.encode()
    fast = parse_fast(body, depth)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_json_fast, "_VECTOR_BYTES", 0)  # numpy's scan, as for a large body
        assert parse_fast(body, depth) == fast
    if fast is None:
        return
    assert not repeated, body
    assert _same(fast[0], _DECODER.decode(text)), body
    assert not _nested_deeper(fast[0], depth), body


def test_the_usual_request_shapes_take_the_fast_path() -> None:
    rows = [{"mean radius": 17.99 + i, "texture": i, "kind": "a:b c"} for i in range(100)]
    v2 = {"inputs": [{"name": "x", "shape": [100, 3], "datatype": "FP64", "data": [1.5] * 300}]}
    for value in ({"inputs": rows}, {"dataframe_records": rows}, v2, {"instances": [[1, 2]] * 9}):
        for seps in ((",", ":"), (", ", ": ")):
            body = json.dumps(value, separators=seps).encode()
            assert parse_fast(body, 32) == (value,)


@settings(max_examples=300)
@given(
    body=st.binary(max_size=300)
    | st.text(alphabet='{}[]:"0123456789 ab', max_size=300).map(str.encode)
)
def test_the_byte_scan_is_the_same_with_bytes_methods_and_with_numpy(body: bytes) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_json_fast, "_VECTOR_BYTES", 1 << 30)
        small = _json_fast._scan(body)
        patch.setattr(_json_fast, "_VECTOR_BYTES", 0)
        large = _json_fast._scan(body)
    assert small == large
    digits = max((len(run) for run in re.findall(rb"[0-9]+", body)), default=0)
    assert small == (digits >= LONG_DIGITS, body.count(b"{"), body.count(b"["), body.count(b":"))
