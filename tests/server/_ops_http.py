"""The ops areas' HTTP tests talk to the per-worker platform server (a real port) with
one token per role, authenticated by a small Authenticator swapped in for the test
(tokens proper arrive with brief A)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from loopline.errors import Unauthorized
from loopline.server._permissions import Caller, Role

USERS = {role: f"{role.name.lower()}-user" for role in Role}


class RoleTokens:
    """`Authorization: Bearer <role>` is that role's user; anything else is refused."""

    def authenticate(self, request: Any) -> Caller:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            role = Role[given.upper()]
        except KeyError:
            raise Unauthorized("unknown token") from None
        return Caller(USERS[role], role)


def as_role(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {role.name.lower()}"}


@contextmanager
def app_client(platform_server: Any, opened: Any) -> Iterator[httpx.Client]:
    """An HTTP client of the platform server serving `opened` with role tokens; every
    request is an admin's unless it says otherwise."""
    app = platform_server.app
    previous = app.state.authenticator
    app.state.authenticator = RoleTokens()
    try:
        with (
            platform_server.serving(opened) as url,
            httpx.Client(base_url=url, headers=as_role(Role.ADMIN), timeout=30) as client,
        ):
            yield client
    finally:
        app.state.authenticator = previous


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error body of an answer that must have `status`."""
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()["error"]
    assert {"type", "message"} <= set(body)
    return body
