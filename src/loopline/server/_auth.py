"""Who is calling: API tokens, a trusted proxy's user header, and failed-login limits.

`TokenAuthenticator` reads `Authorization: Bearer llt_...` (what `LOOPLINE_TOKEN` and
`MLFLOW_TRACKING_TOKEN` clients send), or HTTP basic with the token as the password (what
`MLFLOW_TRACKING_USERNAME`/`PASSWORD` clients send; the user name is ignored: the token
names its user). A missing, malformed, unknown, expired or revoked token is 401 with
`WWW-Authenticate: Bearer`.

A browser that logged in on the web UI's login page sends a session cookie instead
(server/_sessions.py): it names a token by its id, and is good for GET and HEAD requests
while that token is usable. Logging in counts toward the failed-login limit like any
other presented token (`login`).

Costs per request: a token found in the store is cached for `CACHE_SECONDS` (5 s), so a
revoked token stops working within 5 s on every worker; `last_used_at` is written at most
once a minute per token and worker (`TOUCH_SECONDS`), never once per request.

`FailedLogins` counts wrong credentials per client address (in memory, per worker): after
10 in a minute that address gets 429 with `Retry-After` until the oldest failure is a
minute old, valid token or not. A request without credentials is not a failure.

`ProxyAuthenticator` believes a user header (`--trust-header X-Forwarded-User`) only when
the TCP peer is one of `--trusted-proxy` (addresses or networks); the user's role comes
from `[auth.users]` in loopline.toml, and a user not listed there is refused (403).
From any other peer the header is ignored and the token rules apply.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loopline.errors import LooplineError
from loopline.server._permissions import Caller, Forbidden, Role, Unauthorized
from loopline.server._sessions import SessionKey, session_cookie

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.store.tokens import ApiToken, TokenStore

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
TOUCH_SECONDS = 60.0
MAX_FAILURES, FAILURE_WINDOW_SECONDS = 10, 60.0
_MAX_CACHED = 10_000
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TooManyAttempts(LooplineError):
    """Too many failed authentications from one address; retry after `retry_after` s."""

    http_status = 429
    exit_code = 1

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, hint=f"retry after {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


def unauthorized(message: str) -> Unauthorized:
    """A 401 that says how to authenticate (the app adds `WWW-Authenticate: Bearer`)."""
    return Unauthorized(
        message, hint="send `Authorization: Bearer <token>` (`loopline tokens create`)"
    )


class FailedLogins:
    """Failed authentications per client address in a sliding window (thread-safe)."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window_seconds: float = FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit, self._window, self._clock = limit, window_seconds, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise TooManyAttempts while `address` is over the limit."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) >= self._limit:
                wait = math.ceil(recent[0] + self._window - self._clock())
                raise TooManyAttempts(
                    f"too many failed authentications from {address}", retry_after=max(wait, 1)
                )

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(self._clock())
            if len(self._failures) > _MAX_CACHED:  # a flood of addresses: forget the idle
                for idle in [a for a, times in self._failures.items() if not times]:
                    del self._failures[idle]

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        cutoff = self._clock() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        return times


def client_address(request: Request) -> str:
    """The TCP peer's address ("unknown" when the server does not know it)."""
    return request.client.host if request.client is not None else "unknown"


def presented_token(request: Request) -> str | None:
    """The token of the Authorization header (Bearer, or basic's password), or None when
    the request has no Authorization header; 401 for one that is not understood."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("the basic credentials are not valid base64 UTF-8") from None
        return decoded.partition(":")[2] or None
    raise unauthorized("the Authorization header is neither Bearer nor Basic")


class TokenAuthenticator:
    """Callers by their API token (see the module docstring for caching and limits)."""

    def __init__(
        self,
        tokens: Callable[[], TokenStore],
        *,
        failures: FailedLogins | None = None,
        cache_seconds: float = CACHE_SECONDS,
        touch_seconds: float = TOUCH_SECONDS,
    ) -> None:
        self._tokens = tokens
        self.failures = failures or FailedLogins()
        self._cache_seconds, self._touch_seconds = cache_seconds, touch_seconds
        self._cache: dict[str, tuple[float, ApiToken]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, request: Request) -> Caller:
        address = client_address(request)
        self.failures.check(address)
        try:
            token = presented_token(request)
        except Unauthorized:
            self.failures.failed(address)
            raise
        key: SessionKey | None = getattr(request.app.state, "session_key", None)
        if token is None:
            cookie = None if key is None else session_cookie(request, key)
            if key is None or cookie is None:
                raise unauthorized("this server needs a token")
            record = self._session_token(key, cookie)
        else:
            record = self._usable(token, address)
        self._touch(record.id)
        return Caller(record.user, Role.parse(record.role))

    def login(self, request: Request, token: str) -> ApiToken:
        """The record of a token typed on the login page: 401 for a bad one (a failure
        of the address, as a bad Authorization header is), 429 while over the limit."""
        address = client_address(request)
        self.failures.check(address)
        return self._usable(token.strip(), address)

    def _usable(self, token: str, address: str) -> ApiToken:
        record = self._lookup(token)
        if record is None or not record.usable():
            self.failures.failed(address)
            why = "unknown" if record is None else "revoked or expired"
            raise unauthorized(f"the token is {why}")
        return record

    def _session_token(self, key: SessionKey, cookie: str) -> ApiToken:
        """The token a session cookie names, while it is usable (see _sessions). A cookie
        that fails its check is not a failed login: a 256-bit MAC is not guessed, and a
        cookie signed with a key since replaced is no attack."""
        token_id = key.token_id(cookie)
        if token_id is None:
            raise unauthorized("the session is not valid or has ended; log in again")
        record = self._lookup_id(token_id)
        if record is None or not record.usable():
            raise unauthorized("the session's token is revoked or expired; log in again")
        return record

    def _lookup_id(self, token_id: str) -> ApiToken | None:
        """A token's record by its id, cached like `_lookup`'s."""
        from loopline.errors import NotFound

        key = f"id:{token_id}"
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            record = self._tokens().get(token_id)
        except NotFound:
            return None
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now, record)
        return record

    def _lookup(self, token: str) -> ApiToken | None:
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        if not token.isascii():
            return None
        record = self._tokens().verify(token)
        if record is not None:  # unknown tokens are not cached: a new one works at once
            with self._lock:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = (now, record)
        return record

    def _touch(self, token_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(token_id)
            if last is not None and now - last < self._touch_seconds:
                return
            self._touched[token_id] = now
        try:
            self._tokens().touch({token_id: datetime.now(UTC)})
        except LooplineError as exc:  # the answer matters more than the bookkeeping
            log.warning("could not record the use of token %s: %s", token_id, exc)


def parse_networks(addresses: Iterable[str]) -> list[Network]:
    """`--trusted-proxy` values (addresses or CIDR networks); InvalidInput for a bad one."""
    from loopline.errors import InvalidInput

    networks = []
    for address in addresses:
        try:
            networks.append(ipaddress.ip_network(address.strip(), strict=False))
        except ValueError:
            raise InvalidInput(
                f"--trusted-proxy {address!r} is not an IP address or network"
            ) from None
    return networks


def parse_users(users: Mapping[str, str]) -> dict[str, Role]:
    """[auth.users] of loopline.toml as user -> Role; InvalidInput for a bad entry."""
    from loopline.errors import InvalidInput
    from loopline.store.tokens import check_user

    roles = {}
    for user, role in users.items():
        check_user(user)
        try:
            roles[user] = Role.parse(role)
        except LooplineError as exc:
            raise InvalidInput(f"[auth.users] {user}: {exc.message}") from None
    return roles


class ProxyAuthenticator:
    """The user a trusted proxy names in `header`, with the role [auth.users] gives;
    requests from other peers, or without the header, go to `fallback` (tokens)."""

    def __init__(
        self,
        header: str,
        proxies: list[Network],
        users: Mapping[str, Role],
        fallback: TokenAuthenticator,
    ) -> None:
        self._header, self._proxies = header.lower(), proxies
        self._users, self._fallback = dict(users), fallback

    def authenticate(self, request: Request) -> Caller:
        named = request.headers.get(self._header)
        if named is None or not self._trusted(client_address(request)):
            return self._fallback.authenticate(request)
        role = self._users.get(named.strip())
        if role is None:
            raise Forbidden(
                f"user {named.strip()[:128]!r} has no role on this server",
                hint="add it to [auth.users] in loopline.toml",
            )
        return Caller(named.strip(), role)

    def login(self, request: Request, token: str) -> ApiToken:
        """A token typed on the login page, checked by the token rules."""
        return self._fallback.login(request, token)

    def _trusted(self, address: str) -> bool:
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self._proxies)
