"""The platform server's FastAPI application over one project's stores.

Routes are versioned under /api/v1 (one module per area in `server.api`); OpenAPI at
/openapi.json. Errors are `{"error": {"type", "message", "hint", "field"}}` with the
error's HTTP status, as on the prediction server: a database that dropped the connection
is a 503 StoreUnavailable (which the remote client retries where that is safe), and even
a bug is a JSON 500, never a bare traceback page. The web UI's pages (`server.ui`) are
served at / beside the API, over the same stores.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from loopline._version import __version__
from loopline.config import current_user
from loopline.errors import LooplineError, MalformedRequest, NotFound
from loopline.server._permissions import Authenticator, LocalAuthenticator, Unauthorized

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from loopline.project import Stores
    from loopline.server._options import ServerOptions

API_PREFIX = "/api/v1"


def create_app(
    opened: Stores,
    *,
    authenticator: Authenticator | None = None,
    options: ServerOptions | None = None,
) -> FastAPI:
    """The application serving `opened` (a project's stores) to `authenticator`'s callers.

    Without an authenticator every caller is the server's own user, as admin: for a server
    bound to loopback only (the `loopline server` command decides, see its --auth).
    `options` are the `loopline server` flags: the Host allow-list and CORS are on only
    with them; the path guard, body limit and security headers always (see _guards).
    """
    from fastapi import FastAPI

    from loopline.server._sessions import SessionKey
    from loopline.server.api import ROUTERS
    from loopline.server.ui import PAGES

    app = FastAPI(
        title="loopline",
        version=__version__,
        openapi_url=None,  # served below, as a route that declares its permission
        docs_url=None,
        redoc_url=None,
    )
    app.state.stores = opened
    app.state.authenticator = authenticator or LocalAuthenticator(current_user())
    app.state.artifacts_mode = "proxy" if options is None else options.artifacts
    app.state.session_key = SessionKey(opened.settings.state_dir)  # the UI's sign-ins
    _install_guards(app, options)
    _install_error_handlers(app)
    _add_openapi_route(app)
    for name in ROUTERS:
        module = importlib.import_module(f"loopline.server.api.{name}")
        app.include_router(module.router, prefix=getattr(module, "PREFIX", API_PREFIX))
    for name in PAGES:
        app.include_router(importlib.import_module(f"loopline.server.ui.{name}").router)
    return app


def stores_of(request: Request) -> Stores:
    """The stores this server serves."""
    opened: Stores = request.app.state.stores
    return opened


@contextmanager
def bound_to(request: Request) -> Iterator[Stores]:
    """Run core functions (which ask `stores()`) against this server's stores."""
    from loopline.project import Scope, bound

    opened = stores_of(request)
    with bound(Scope(opened)):
        yield opened


def _install_guards(app: FastAPI, options: ServerOptions | None) -> None:
    """The request guards of _guards, added inside-out (the last added runs first)."""
    from loopline.server._guards import BodyLimit, HostGuard, PathGuard, SecurityHeaders
    from loopline.server._options import DEFAULT_MAX_BODY_MB

    max_bytes = DEFAULT_MAX_BODY_MB << 20 if options is None else options.max_body_bytes
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(PathGuard)
    if options is not None and options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )
    if options is not None:
        app.add_middleware(HostGuard, allowed=options.allowed_host_names())
    app.add_middleware(SecurityHeaders)


def _add_openapi_route(app: FastAPI) -> None:
    from fastapi.openapi.utils import get_openapi

    from loopline.server._permissions import public

    schema: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[public()])
    def openapi() -> dict[str, Any]:
        if not schema:
            schema.update(get_openapi(title=app.title, version=app.version, routes=app.routes))
        return schema


def _install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from loopline.serving.online._errors import error_response

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LooplineError)
        response = error_response(exc)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="loopline"'
        return response

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(MalformedRequest(_first_problem(exc.errors())))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            missing = NotFound(f"no such route: {request.method} {_tail(request)}")
            if _browsing(request):
                from loopline.server.ui._pages import error_page

                return error_page(request, NotFound("no such page"))
            return error_response(missing)
        error = LooplineError(str(exc.detail))
        error.http_status = exc.status_code
        return error_response(error)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        """A bug, not the caller's fault, answered as JSON (Starlette re-raises it after
        this answer, so uvicorn logs its trace). The request's state is unknown and uvicorn
        closes the socket: `Connection: close` says so, or the client would lose its next
        request on that connection."""
        error = LooplineError(
            f"internal error ({type(exc).__name__}); the server log has the details"
        )
        response = error_response(error)
        response.headers["Connection"] = "close"
        return response

    app.add_exception_handler(LooplineError, on_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _browsing(request: Request) -> bool:
    """Whether a browser asked for a page (not the API): it gets an HTML error page."""
    accept = request.headers.get("accept", "")
    return not request.url.path.startswith("/api/") and "text/html" in accept


def _tail(request: Request) -> str:
    """The route's path after /api/v1 (an absolute path reads as a server path and is
    taken out of error messages), cut short."""
    path = request.url.path.removeprefix(API_PREFIX).lstrip("/")
    return path if len(path) <= 80 else path[:77] + "..."


def _first_problem(errors: Any) -> str:
    """One line for a request FastAPI refused: the first problem and where it is."""
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        return f"{where}: {error.get('msg', 'invalid')}"
    return "the request is not valid"
