"""Values that go into a URL path: one segment each, whatever they hold."""

from __future__ import annotations

from urllib.parse import quote


def segment(value: object) -> str:
    """`value` as one path segment: '/', '%', '?' and '#' escaped, and a bare '.' or '..'
    too (a client's URL handling must not read it as a step up)."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in {".", ".."} else text
