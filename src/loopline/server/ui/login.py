"""Signing in to the web UI with an API token, and out (sessions: server/_sessions.py).

GET /login shows a form taking a token; POST /login checks it by the server's token
rules (a bad one is a failed login of the address: 401 and the form again, 429 past the
limit) and, for a good one, sets the session cookie and sends the browser back to
`next` (a path on this server only). POST /logout clears the cookie. A server without
authentication (loopback) has no login: both send the browser on.

A login form posted from another site's page (its Origin names another host) is
refused: it would sign the victim's browser in as the attacker's token.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from loopline.errors import LooplineError, MalformedRequest
from loopline.server._permissions import public
from loopline.server._sessions import end_session, set_session
from loopline.server.ui._pages import local_path, page_router
from loopline.server.ui._render import render, sessions_on

router = page_router()

MAX_FORM_BYTES = 8192


@router.get("/login", dependencies=[public()])
def login_form(request: Request) -> Response:
    """The login form (or, on a server without authentication, the page asked for)."""
    target = local_path(request.query_params.get("next"))
    if not sessions_on(request):
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", {"next": target, "error": None})


@router.post("/login", dependencies=[public()])
async def login(request: Request) -> Response:
    """Check the token typed in the form; a good one starts a session."""
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    target = local_path(form.get("next"))
    if not sessions_on(request):
        return RedirectResponse(target, status_code=303)
    _same_origin(request)
    login_with = getattr(request.app.state.authenticator, "login", None)
    if login_with is None:
        raise LooplineError("this server does not sign people in with tokens")
    try:
        record = await run_in_threadpool(login_with, request, form.get("token", ""))
    except LooplineError as exc:
        context = {"next": target, "error": exc.message}
        headers = dict(getattr(exc, "headers", None) or {})
        return render(request, "login.html", context, exc.http_status, headers)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, request.app.state.session_key, record.id, record.expires_at)
    return response


@router.post("/logout", dependencies=[public()])
def logout(request: Request) -> Response:
    """End the browser's session (the token itself stays valid)."""
    response = RedirectResponse("/login" if sessions_on(request) else "/", status_code=303)
    end_session(response, request, request.app.state.session_key)
    return response


async def _form(request: Request) -> dict[str, str]:
    """The fields of a url-encoded form (the first value of each), at most 8 KiB."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise MalformedRequest("the login form is sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise MalformedRequest(f"the login form is over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise MalformedRequest("the login form is not valid UTF-8 form data") from None
    return {name: values[0] for name, values in fields.items() if values}


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site's page (see the module docstring): by the
    browser's Sec-Fetch-Site, else by the Origin's host (not its scheme: behind a TLS
    proxy the browser says https and this server sees http)."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is not None:
        foreign = site not in ("same-origin", "none")
    elif origin is not None:
        foreign = urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
    else:
        foreign = False  # not a browser's form
    if foreign:
        raise MalformedRequest("the login form was sent from another site's page")
