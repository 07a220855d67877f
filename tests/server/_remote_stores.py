"""A remote metadata store over the test's platform server, for the conformance checks."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from loopline.store import MetadataStore
from loopline.store.remote import RemoteMetadataStore


@contextmanager
def remote_store(platform_server: Any, served: Any) -> Iterator[MetadataStore]:
    """A RemoteMetadataStore whose server serves `served` (a project's Stores) without
    authentication (a claimed actor is kept, as the conformance checks expect).

    Until the remote audit log exists (brief H), the checks read the audit events the
    server wrote from the served store itself: what the server recorded, read directly.
    """
    from loopline.config import current_user
    from loopline.server._permissions import LocalAuthenticator

    app = platform_server.app
    previous = app.state.authenticator  # a module's api_client may have its own in place
    app.state.authenticator = LocalAuthenticator(current_user())
    with platform_server.serving(served) as url:
        store = RemoteMetadataStore(url)
        if importlib.util.find_spec("loopline.store.remote.audit") is None:
            store.audit = served.metadata.audit
        try:
            yield cast(MetadataStore, store)
        finally:
            store.close()
            app.state.authenticator = previous


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
