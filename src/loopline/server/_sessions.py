"""Browser sessions of the web UI: a signed cookie, so that a page need not carry a token.

The login page takes an API token; a good one sets the `loopline_session_<key tag>`
cookie to `v1.<token id>.<expiry, epoch seconds>.<HMAC-SHA256 of the three>`. The key
tag (8 hex digits of a hash of the key) keeps apart the sessions of two servers a
browser reaches under one host name (cookies ignore ports): signing in to one does not
sign out of the other. The cookie holds no
part of the token's secret: a copy of it in a log or a proxy names a token, it does not
grant one. The HMAC key is 32 random bytes in the project's `.loopline/ui-session.key`,
created on first use with mode 0600 (every worker of the server reads the same file;
deleting it ends every session). On each request the token's record is read by its id
(cached as tokens are, `_auth.CACHE_SECONDS`), so a revoked or expired token ends its
sessions within that time.

The cookie is HttpOnly, SameSite=Strict, Path=/, Secure when the request came over https,
and lasts `SESSION_SECONDS` or until its token expires, whichever is first. A session
authenticates only GET and HEAD requests (`SAFE_METHODS`): the pages never change
anything, so a cookie riding along a forged cross-site POST is worth nothing even where
a browser ignores SameSite.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.errors import LooplineError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

COOKIE_PREFIX = "loopline_session_"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD"})
KEY_FILE = "ui-session.key"
_COOKIE = re.compile(r"v1\.([0-9a-f]{12})\.([0-9]{1,12})\.([A-Za-z0-9_\-]{43})")


class SessionKey:
    """Signs and checks session cookies with the key kept in `state_dir` (lazily)."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / KEY_FILE
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def cookie_name(self) -> str:
        """The name of this key's session cookie (see the module docstring)."""
        tag = hashlib.blake2b(self._secret(), digest_size=4, person=b"cookie").hexdigest()
        return f"{COOKIE_PREFIX}{tag}"

    def sign(self, token_id: str, expires_at: int) -> str:
        """The cookie value of a session of token `token_id` until `expires_at` (epoch s)."""
        body = f"v1.{token_id}.{expires_at}"
        return f"{body}.{self._mac(body)}"

    def token_id(self, cookie: str, now: float | None = None) -> str | None:
        """The token id a cookie value names, or None when it is malformed, forged or
        past its expiry."""
        found = _COOKIE.fullmatch(cookie)
        if found is None:
            return None
        token_id, expires_at, mac = found.groups()
        if not hmac.compare_digest(mac, self._mac(f"v1.{token_id}.{expires_at}")):
            return None
        if int(expires_at) <= (time.time() if now is None else now):
            return None
        return token_id

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._secret(), body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = _read_or_create(self._path)
            return self._key


def _read_or_create(path: Path) -> bytes:
    """The key in `path`, made first if missing: written whole to a private temp file,
    then linked into place (two workers racing agree on the first one linked)."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(32).hex().encode("ascii"))
        with contextlib.suppress(FileExistsError):  # another worker's key came first
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    """The key of a regular file only this user may read (never through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise LooplineError(f"cannot read the UI session key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        text = file.read(200).strip()
    if mode & 0o077:
        raise LooplineError(
            f"the UI session key {path} may be read by other users",
            hint=f"chmod 600 {path}, or delete it to make a new one (ends every session)",
        )
    if not re.fullmatch(rb"[0-9a-f]{64}", text):
        raise LooplineError(
            f"the UI session key {path} is not 64 hex digits",
            hint="delete it: the server makes a new one (ends every session)",
        )
    return bytes.fromhex(text.decode("ascii"))


def session_cookie(request: Request, key: SessionKey) -> str | None:
    """The session cookie of a GET or HEAD request, or None."""
    if request.method not in SAFE_METHODS or not request.cookies:
        return None
    return request.cookies.get(key.cookie_name)


def set_session(
    response: Response,
    request: Request,
    key: SessionKey,
    token_id: str,
    token_expires_at: datetime | None,
) -> None:
    """Start a session of `token_id` on `response` (see the module docstring)."""
    now = int(time.time())
    expires_at = now + SESSION_SECONDS
    if token_expires_at is not None:
        expires_at = min(expires_at, int(token_expires_at.timestamp()))
    response.set_cookie(
        key.cookie_name,
        key.sign(token_id, expires_at),
        max_age=max(expires_at - now, 0),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response, request: Request, key: SessionKey) -> None:
    """Clear the session cookie."""
    response.delete_cookie(
        key.cookie_name,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
