"""The orjson fast path of request parsing answers exactly as the strict parser does.

For any JSON text, `parse_fast` either returns the value the standard library's strict
parser returns (same types: an int stays an int), or declines (None) and leaves the
strict parser to decide; it never accepts a repeated key or too deep a nesting.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.errors import MalformedRequest
from loopline.serving.online._json import _DECODER, parse_json
from loopline.serving.online._json_fast import parse_fast

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


@settings(max_examples=400, deadline=None)
@given(value=values, seps=separators, ascii_only=st.booleans())
def test_the_fast_path_returns_what_the_strict_parser_returns(
    value: Any, seps: tuple[str, str], ascii_only: bool
) -> None:
    body = json.dumps(value, separators=seps, ensure_ascii=ascii_only).encode()
    fast = parse_fast(body, 32)
    if fast is not None:
        assert _same(fast[0], _DECODER.decode(body.decode()))


@settings(max_examples=300, deadline=None)
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
