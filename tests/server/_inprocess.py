"""Calling the platform server's app in-process: Starlette's TestClient (routes and their
answers), and `send_raw` for request targets an HTTP client would normalise first."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any
from urllib.parse import unquote


def app_client(app: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000), **kw: Any) -> Any:
    """A TestClient over `app` from the address `client`, with a Host the guard accepts."""
    from starlette.exceptions import StarletteDeprecationWarning

    with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we have
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient
    kw.setdefault("base_url", "http://127.0.0.1:5000")
    return TestClient(app, client=client, **kw)


def send_raw(
    app: Any, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Send `target` (already percent-encoded, unnormalised) as uvicorn hands it to the app:
    `raw_path` as received and `path` percent-decoded. Returns (status, headers, JSON)."""
    raw, _, query = target.encode("ascii").partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw.decode("ascii")),
        "raw_path": raw,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:5000")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    return start["status"], answer_headers, parsed
