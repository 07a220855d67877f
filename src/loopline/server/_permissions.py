"""Who may call a route: roles, the caller, and the permission every route declares.

Roles are cumulative, each allowing what the one before it does and more:
reader (every GET), writer (+ runs, artifacts, datasets, model versions), deployer
(+ aliases, promotions, deployments, rollback), approver (+ approvals), admin (+ tokens).

A route declares its permission with a dependency: `caller: Caller = requires(Role.WRITER)`
(or `dependencies=[requires(...)]`), or `public()` for the few routes anyone may call
(health, login). `declared_permission(route)` finds the declaration; a test walks every
route of the app (`all_routes`) and fails on one without it, so no route ships unprotected.

Who the caller is comes from `app.state.authenticator` (see `Authenticator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

from loopline.errors import Forbidden, LooplineError, Unauthorized

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute


class Role(IntEnum):
    """What a token may do; each role includes every role below it."""

    READER = 1
    WRITER = 2
    DEPLOYER = 3
    APPROVER = 4
    ADMIN = 5

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            known = ", ".join(role.name.lower() for role in cls)
            raise LooplineError(f"unknown role {name!r}; the roles are {known}") from None


@dataclass(frozen=True)
class Caller:
    """The caller of one request: the user every change is recorded under.

    `authenticated` is False when the server runs without authentication (loopback, no
    --auth): then a user name the client sends (a run's user, an actor) is kept, since
    the server knows no better; with authentication it is always `user`.
    """

    user: str
    role: Role
    authenticated: bool = True

    def acting_as(self, claimed: str | None) -> str:
        """Who a change is recorded under: the authenticated user, never a claimed one."""
        if self.authenticated or not claimed:
            return self.user
        return claimed


class Authenticator(Protocol):
    """Finds the caller of a request, or raises Unauthorized."""

    def authenticate(self, request: Request) -> Caller: ...


__all__ = [
    "PUBLIC",
    "Authenticator",
    "Caller",
    "Forbidden",
    "LocalAuthenticator",
    "Role",
    "Unauthorized",
    "all_routes",
    "declared_permission",
    "public",
    "requires",
]

PUBLIC = "public"
_MARK = "loopline_permission"


def requires(role: Role) -> Any:
    """A dependency that admits callers with at least `role` and gives the Caller."""
    from fastapi import Depends
    from starlette.requests import Request

    def check(request: Request) -> Caller:
        caller = authenticate(request)
        if caller.role < role:
            raise Forbidden(
                f"{caller.user} has the {caller.role.name.lower()} role; "
                f"this needs {role.name.lower()}"
            )
        return caller

    # FastAPI reads the annotation to inject the request; this module's annotations are
    # strings (PEP 563) naming a class imported here, not in the module's globals
    check.__annotations__["request"] = Request
    setattr(check, _MARK, role)
    return Depends(check)


def public() -> Any:
    """A dependency that declares a route open to anyone (health, login)."""
    from fastapi import Depends

    def open_route() -> None:
        return None

    setattr(open_route, _MARK, PUBLIC)
    return Depends(open_route)


def authenticate(request: Request) -> Caller:
    """The request's caller, by the app's authenticator (cached on the request)."""
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    caller: Caller = request.app.state.authenticator.authenticate(request)
    request.state.caller = caller
    return caller


def all_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route under `routes` (an app's or a router's), included routers flattened:
    FastAPI >= 0.160 keeps an included router as one entry whose `effective_candidates()`
    are its routes with their full path and dependencies."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from all_routes(candidates())
        else:
            yield route


def declared_permission(route: BaseRoute) -> Role | str | None:
    """The permission a route declares (a Role or PUBLIC); None when it declares none."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    found: list[Role | str] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        mark = getattr(current.call, _MARK, None)
        if mark is not None:
            found.append(mark)
        stack.extend(current.dependencies)
    if not found:
        return None
    roles = [mark for mark in found if isinstance(mark, Role)]
    return max(roles) if roles else PUBLIC


class LocalAuthenticator:
    """No authentication: every caller is `user` with `role` (loopback without --auth)."""

    def __init__(self, user: str, role: Role = Role.ADMIN) -> None:
        self._caller = Caller(user, role, authenticated=False)

    def authenticate(self, request: Request) -> Caller:
        return self._caller
