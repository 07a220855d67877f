"""The UI's static files (our CSS and JS, vendored htmx and uPlot), served from the package.

Only the files under static/ with a known type are served, read once into memory (they
are small): a request names one of them or gets 404, so no path in a request ever
reaches the file system. URLs carry `VERSION`, a hash of all the files' bytes, and are
cached for a year (`immutable`): a new release, or an edited file, changes every URL.
A URL with another version still answers (an open page from before an upgrade), but is
not kept by caches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from loopline.errors import NotFound
from loopline.server._permissions import public

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
LONG_CACHE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str


@cache
def files() -> dict[str, StaticFile]:
    """Every servable file by its path under static/ ('vendor/htmx.min.js')."""
    found = {}
    for path in sorted(STATIC.rglob("*")):
        media_type = TYPES.get(path.suffix)
        if media_type is not None and path.is_file() and not path.is_symlink():
            name = path.relative_to(STATIC).as_posix()
            found[name] = StaticFile(path.read_bytes(), media_type)
    return found


@cache
def version() -> str:
    """A hash of every static file's name and bytes (12 hex digits)."""
    digest = hashlib.blake2b(digest_size=6)
    for name, file in files().items():
        digest.update(name.encode() + b"\0" + file.body + b"\0")
    return digest.hexdigest()


def static_url(name: str) -> str:
    """The versioned URL of a static file; KeyError for one that does not exist (a
    template naming a missing file fails at once, in every test of the page)."""
    if name not in files():
        raise KeyError(f"no static file {name!r}")
    return f"/static/{version()}/{name}"


@router.get("/static/{file_version}/{name:path}", dependencies=[public()])
def static_file(file_version: str, name: str) -> Response:
    """A static file, cached for a year when `file_version` is the current one."""
    found = files().get(name)
    if found is None:
        raise NotFound("no such static file")
    cache_control = LONG_CACHE if file_version == version() else "no-cache"
    headers = {"Cache-Control": cache_control}
    return Response(found.body, media_type=found.media_type, headers=headers)
