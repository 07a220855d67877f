"""What an HTTP error body may say: never where things are on the server.

Error messages are written for the person at the server's console ("no model package at
/srv/churn/.loopline/cache/models/ab12..."), and a load failure or a library's message
can carry a cache folder, the project root or a store URI. A client must not learn the
server's file system or its stores from them, so every error body passes through
`public_text`: absolute paths (POSIX, Windows, `~/`), the working, home and temporary
folders, `.loopline/...` and URIs (`file:`, `s3://`, database URLs with passwords)
become `<server path>`, and what the client would not be able to print (a lone
surrogate) is escaped. The full text goes to the server log (see `error_body`). The
service's own URL paths (`/health/ready`, `/v2/...`) stay: hints name them.

`clip` is the other half: what a client sent (a key, a tensor name, a deployment name
in the URL) is quoted in a message at most `CLIP` characters long. An error message is
scanned for secrets when it is made and written to the log; a 1 MB key must cost
neither, and the client knows what it sent.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from functools import cache

REDACTED = "<server path>"
CLIP = 60
# The first segments of the service's own URL paths, which hints may name.
ROUTE_ROOTS = frozenset({"v1", "v2", "health", "metrics", "invocations", "docs", "redoc"})
_PATH_CHARS = r"[^\s'\"<>`|,;()\[\]{}]"
_URI = re.compile(rf"\b[A-Za-z][A-Za-z0-9+.-]*://{_PATH_CHARS}*")
_WINDOWS = re.compile(rf"(?<![\w])[A-Za-z]:[\\/]{_PATH_CHARS}*")
_HOME = re.compile(rf"(?<![\w/.~])~[\w.-]*/{_PATH_CHARS}*")
_STATE = re.compile(rf"(?<![\w/.-])\.loopline(?:[\\/]{_PATH_CHARS}*)?")
# an absolute POSIX path: '/' not after a word, a dot or another path character
_POSIX = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s'\"<>`|,;()\[\]{}/]+/?)+")
_REPEATED = re.compile(rf"(?:{re.escape(REDACTED)})+")


def clip(text: object, limit: int = CLIP) -> str:
    """Client-supplied text as a message quotes it: at most `limit` characters."""
    shown = text if isinstance(text, str) else str(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def public_text(text: str) -> str:
    """`text` without server paths or store locations, safe to render as JSON."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "/" not in text and "\\" not in text and ".loopline" not in text:
        return text  # the common case: nothing path-like at all
    text = _folders_pattern(_server_folders()).sub(REDACTED, text)
    text = _URI.sub(REDACTED, text)
    text = _WINDOWS.sub(REDACTED, text)
    text = _HOME.sub(REDACTED, text)
    text = _STATE.sub(REDACTED, text)
    text = _POSIX.sub(_posix_path, text)
    return _REPEATED.sub(REDACTED, text)


def _posix_path(match: re.Match[str]) -> str:
    path = match[0]
    first = path[1:].split("/", 1)[0]
    return path if first in ROUTE_ROOTS or path == REDACTED else REDACTED


def _server_folders() -> tuple[str, ...]:
    """Folders whose names may hold spaces, replaced as whole names (longest first)."""
    found = set(_fixed_folders())
    with contextlib.suppress(OSError):  # the working folder may have been removed
        found.add(os.getcwd())
    return tuple(sorted((f for f in found if len(f) > 1), key=len, reverse=True))


@cache
def _folders_pattern(folders: tuple[str, ...]) -> re.Pattern[str]:
    """The folders as whole path names: "/w" is in "/w/x", not in "/v2/models/wine"."""
    names = "|".join(re.escape(folder) for folder in folders) or "(?!)"
    return re.compile(rf"(?<![\w.~/-])(?:{names})(?![\w.~-])")


@cache
def _fixed_folders() -> tuple[str, ...]:
    return (tempfile.gettempdir(), os.path.expanduser("~"))


def header_list(names: Sequence[str], *, limit: int = 20, each: int = CLIP) -> str:
    """Client-sent names as one HTTP header value: each clipped to `each` characters and
    percent-encoded (ASCII only, no comma, CR or LF inside a name), joined by commas; past
    `limit` names, ",...". A client decodes a name with urllib.parse.unquote."""
    from urllib.parse import quote

    shown = [quote(name[:each], safe="") for name in names[:limit]]
    return ",".join(shown) + (",..." if len(names) > limit else "")
