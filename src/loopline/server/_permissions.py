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

from loopline.errors import LooplineError

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
    """The authenticated caller of one request: the user every change is recorded under."""

    user: str
    role: Role


class Unauthorized(LooplineError):
    """No valid credentials (a missing, unknown, expired or revoked token)."""

    http_status = 401
    exit_code = 1


class Forbidden(LooplineError):
    """Valid credentials, but a role below what the route requires."""

    http_status = 403
    exit_code = 1


class Authenticator(Protocol):
    """Finds the caller of a request, or raises Unauthorized."""

    def authenticate(self, request: Request) -> Caller: ...


PUBLIC = "public"
_MARK = "loopline_permission"


def requires(role: Role) -> Any:
    """A dependency that admits callers with at least `role` and gives the Caller."""
    from fastapi import Depends
    from starlette.requests import Request as StarletteRequest

    def check(request: Request) -> Caller:
        caller = authenticate(request)
        if caller.role < role:
            raise Forbidden(
                f"{caller.user} has the {caller.role.name.lower()} role; "
                f"this needs {role.name.lower()}"
            )
        return caller

    # The annotation is a string (postponed annotations) naming a class this module
    # imports only for type checking: give FastAPI the class, or it reads `request` as a
    # query parameter and every call fails with 400.
    check.__annotations__["request"] = StarletteRequest
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
        self._caller = Caller(user, role)

    def authenticate(self, request: Request) -> Caller:
        return self._caller
