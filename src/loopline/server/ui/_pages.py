"""What makes a route a page: errors answered as HTML, and sign-in asked for by redirect.

A page module makes its router with `page_router()`. Its routes declare their permission
as API routes do (`caller: Caller = requires(Role.READER)`); what differs is the answer
when something goes wrong, decided here once for every page:

- no valid credentials (401): a redirect (303) to `/login?next=<this page>`; to an htmx
  request, a 401 with `HX-Redirect`, so that the whole page goes to the login form;
- any other loopline error: an HTML error page with the error's one-line message and
  status (NotFound 404, Forbidden 403; bad input, e.g. a name no experiment can have, 400).

`wants_fragment(request, target)` tells a route whether htmx asked for one part of the
page (the element with id `target`) rather than the whole page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from loopline.errors import InvalidInput, LooplineError, Unauthorized
from loopline.server.ui._render import render


class PageRoute(APIRoute):
    """A route whose errors are pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                return to_login(request)
            except LooplineError as exc:
                return error_page(request, exc)

        return answer


def page_router() -> APIRouter:
    """The router of a page module: its routes are PageRoutes, left out of OpenAPI."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)


def error_page(request: Request, error: LooplineError) -> Response:
    """An HTML page saying what went wrong, with the error's status (400 for bad input)."""
    status = 400 if isinstance(error, InvalidInput) else error.http_status
    headers = dict(getattr(error, "headers", None) or {})  # e.g. Retry-After
    return render(request, "error.html", {"error": error, "status": status}, status, headers)


def to_login(request: Request) -> Response:
    """Send the browser to the login page, to come back here once signed in."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/login?" + urlencode({"next": target}, quote_via=quote)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def wants_fragment(request: Request, target: str) -> bool:
    """Whether htmx asked for the element `#target` alone (not a history restore)."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-target") == target
        and headers.get("hx-history-restore-request") != "true"
    )


def local_path(target: str | None) -> str:
    """`target` when it is a path on this server (`/...`, not `//host` or a scheme),
    else "/": where a login may send the browser back to, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 32 for char in target)
    ):
        return "/"
    return target
