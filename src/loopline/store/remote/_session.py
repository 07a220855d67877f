"""One HTTP connection pool to a platform server, and what its answers mean.

Both clients of a server go through one `RemoteSession`: the metadata store over HTTP
(`call`, JSON in and out) and the artifact store over HTTP (_http_transfer.py: `send`
with streamed bodies, `client` for streamed answers). The token is sent as a bearer
credential, a JSON error body becomes the loopline error it names (`errors.ERROR_TYPES`),
and a request that is safe to repeat (a read, or a write keyed by what it writes, such
as a blob under its digest) is retried when the connection drops or the server answers
502/503/504. A request that is not safe to repeat is not retried: its error says that it
may or may not have been applied.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loopline._version import __version__
from loopline.errors import ERROR_TYPES, InvalidInput, LooplineError, StoreUnavailable
from loopline.redact import redact_uri

if TYPE_CHECKING:
    import httpx

API_PREFIX = "/api/v1"
RETRIES = 4
BACKOFF_S = 0.25
TIMEOUT_S = 60.0
_RETRY_STATUS = frozenset({502, 503, 504})

Content = bytes | Callable[[], Iterable[bytes] | bytes]
"""A request body, or a function that makes it afresh for each attempt."""


class RemoteSession:
    """An HTTP client of one platform server (thread-safe: one pool shared by threads)."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float | httpx.Timeout = TIMEOUT_S
    ) -> None:
        self.url = server_url(url)
        self._token = token
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        return f"RemoteSession({redact_uri(self.url)!r})"

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                from loopline.store._tls import tls_context

                headers = {"User-Agent": f"loopline/{__version__}"}
                if self._token:
                    headers["Authorization"] = f"Bearer {self._token}"
                self._client = httpx.Client(
                    base_url=self.url + API_PREFIX,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                    verify=tls_context(),
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request under /api/v1 and return its parsed JSON answer (None for 204).

        `idempotent` defaults to True for GET, HEAD, PUT and DELETE: those are retried.
        """
        repeatable = (
            idempotent if idempotent is not None else method in {"GET", "HEAD", "PUT", "DELETE"}
        )
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        response = self.send(
            method, path, params=params, content=content, headers=headers, repeatable=repeatable
        )
        return self._answer(response)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: Content | None = None,
        headers: dict[str, str] | None = None,
        repeatable: bool = True,
        retries: int = RETRIES,
    ) -> httpx.Response:
        """Send one request under /api/v1; its answer, an error answer raised as the
        loopline error its body names. `content` may be a function that makes the body
        afresh for each attempt (a streamed upload reads its source again).

        Raises:
            StoreUnavailable: the connection failed (after `retries` more tries if the
                request is `repeatable`).
        """
        import httpx

        attempt = 0
        while True:
            attempt += 1
            body = content() if callable(content) else content
            try:
                response = self.client.request(
                    method, path, params=params, content=body, headers=headers
                )
            except httpx.TransportError as exc:
                if repeatable and attempt <= retries:
                    time.sleep(BACKOFF_S * 2 ** (attempt - 1))
                    continue
                raise self._unreachable(method, path, exc, repeatable) from None
            if response.status_code in _RETRY_STATUS:
                if repeatable and attempt <= retries:
                    time.sleep(_retry_after(response, BACKOFF_S * 2 ** (attempt - 1)))
                    continue
                if not repeatable:
                    raise _maybe_applied(error_from(response))
            if response.status_code >= 400:
                raise error_from(response)
            return response

    def _answer(self, response: httpx.Response) -> Any:
        if not response.is_success:  # a redirect: this API answers none
            raise error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StoreUnavailable(
                f"the server at {redact_uri(self.url)} answered something that is not JSON"
            ) from None

    def _unreachable(
        self, method: str, path: str, exc: Exception, repeatable: bool
    ) -> StoreUnavailable:
        where = redact_uri(self.url)
        if repeatable:
            return StoreUnavailable(
                f"cannot reach the loopline server at {where}: {type(exc).__name__}: {exc}",
                hint="check that the server is running and reachable (loopline server)",
            )
        return StoreUnavailable(
            f"the connection to {where} failed during {method} {path}: "
            "it may or may not have been applied",
            hint="check with a read before repeating it",
        )


def _maybe_applied(error: LooplineError) -> LooplineError:
    """A 502/503/504 to a call that is not repeated: the server (or its database) may
    have failed after the write committed, so the error says to look before repeating."""
    if error.hint is None:
        error.hint = "it may or may not have been applied: check with a read before repeating it"
    return error


def error_from(response: httpx.Response) -> LooplineError:
    """The loopline error an error answer names; LooplineError with its status otherwise."""
    kind, message, hint = None, None, None
    try:
        detail = response.json().get("error")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        kind, message, hint = detail.get("type"), detail.get("message"), detail.get("hint")
    elif isinstance(detail, str):
        message = detail
    cls = ERROR_TYPES.get(kind) if isinstance(kind, str) else None
    text = message if isinstance(message, str) and message else f"HTTP {response.status_code}"
    error = _rebuilt(cls or LooplineError, text, hint if isinstance(hint, str) else None)
    if isinstance(detail, dict):  # what some errors carry besides (InvalidField's row)
        for name in _DETAILS:
            if name in detail:
                setattr(error, name, detail[name])
    if cls is None:
        error.http_status = response.status_code
    return error


# attributes an error body may carry besides type, message and hint
_DETAILS = ("field", "row")
# attributes of errors whose constructors need more than a message, when not sent
_DEFAULTS: dict[str, object] = {
    "field": None,
    "row": None,
    "text": "",
    "position": 0,
    "failures": [],
}


def _rebuilt(cls: type[LooplineError], message: str, hint: str | None) -> LooplineError:
    """An error of `cls` with the message and hint, also of the classes whose constructor
    takes more (InvalidFilter's text and position, InvalidField's field): those attributes
    get what the body says of them or a neutral default."""
    try:
        return cls(message, hint=hint)
    except TypeError:
        error = cls.__new__(cls)
        LooplineError.__init__(error, message, hint=hint)
        for name, default in _DEFAULTS.items():
            setattr(error, name, default)
        return error


def server_url(url: str) -> str:
    """The server's base URL without a trailing slash; only http and https are accepted."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(
            f"a loopline server URL must be http(s)://host[:port], got {redact_uri(url)!r}"
        )
    if parts.query or parts.fragment:
        raise InvalidInput(f"a loopline server URL has no query or fragment: {redact_uri(url)!r}")
    return url.strip().rstrip("/")


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(float(response.headers.get("Retry-After", default)), 5.0)
    except ValueError:
        return default
