"""The HTTP API of the test's platform server for callers who say who they are in
headers (`api_client`, `as_role`), and names that try to leave their place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class HeaderRoles:
    """An Authenticator for tests: the caller named by X-Test-User with the role named by
    X-Test-Role (authenticated, so any user name a body claims is ignored)."""

    def authenticate(self, request: Any) -> Any:
        from loopline.errors import Unauthorized
        from loopline.server._permissions import Caller, Role

        role = request.headers.get("X-Test-Role")
        if role is None:
            raise Unauthorized("no credentials")
        return Caller(request.headers.get("X-Test-User", "alice"), Role.parse(role))


@contextmanager
def api_client(platform_server: Any, root: Any) -> Iterator[Any]:
    """An httpx client of the platform server (a real port), serving a fresh SQLite
    project at `root` to callers who say who they are in headers (`as_role(...)`);
    yields (client, stores)."""
    import httpx

    from loopline.config import init_project
    from loopline.project import open_stores, project_settings

    init_project(root)
    opened = open_stores(project_settings(root))
    app = platform_server.app
    previous = app.state.authenticator
    app.state.authenticator = HeaderRoles()
    try:
        with platform_server.serving(opened) as url, httpx.Client(base_url=url) as client:
            yield client, opened
    finally:
        app.state.authenticator = previous
        opened.close()


def as_role(role: str, user: str = "alice") -> dict[str, str]:
    return {"X-Test-Role": role, "X-Test-User": user}


# spellings of a name that tries to leave its place: each must be refused as a name
TRAVERSAL = [
    "..",
    "%2e%2e",
    "%252e%252e",
    "..%2f..%2fetc",
    "..%5c..%5cwindows",
    "..;",
    "a%5cb",
    "%2fetc%2fpasswd",
    "file:%2f%2f%2fetc",
    "x%00y",
    "%c0%ae%c0%ae",
    ".hidden",
]
