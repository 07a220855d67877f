"""Rendering a page: the Jinja2 environment, the page's headers, and the filters templates
format values with.

Autoescaping is on for every template, whatever its name: run names, params, tags and
every other stored string reach the page as text, never as markup, also inside
attributes (Jinja escapes quotes too). No template uses `|safe`; a test greps for it.

Every HTML answer carries `CONTENT_SECURITY_POLICY`: scripts and styles only from this
server's /static files, so that even a string that slipped through escaping could not
run. Hence no inline <script>, no style="..." and no on*="..." in any template; htmx's
config travels in a <meta> tag, and its inline indicator style is turned off there.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.server._permissions import Caller, LocalAuthenticator
from loopline.server.ui.static import static_url

if TYPE_CHECKING:
    import jinja2
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

NAV: tuple[tuple[str, str], ...] = (
    ("Experiments", "/"),
    ("Datasets", "/datasets"),
    ("Models", "/models"),
    ("Deployments", "/deployments"),
    ("Monitoring", "/monitoring"),
    ("Audit", "/audit"),
)
"""The top navigation: (label, path) of each area's first page. Only pages that exist
are linked; an area's page adds itself here when it is built."""


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """`template` (a file in templates/) rendered as the answer to `request`, with the
    page's security headers. Templates see `context`, plus `request`, `nav`, `static`
    (a file's versioned URL), `caller` (None when no one is signed in) and `sessions`
    (whether this server signs people in, i.e. shows a log-out button)."""
    from starlette.responses import HTMLResponse

    values = {
        "request": request,
        "nav": NAV,
        "static": static_url,
        "caller": signed_in(request),
        "sessions": sessions_on(request),
        **(context or {}),
    }
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


def signed_in(request: Request) -> Caller | None:
    """The caller this request was authenticated as, if a page's permission asked."""
    caller = getattr(request.state, "caller", None)
    return caller if isinstance(caller, Caller) else None


def sessions_on(request: Request) -> bool:
    """Whether this server authenticates callers (and so has a login page)."""
    return not isinstance(request.app.state.authenticator, LocalAuthenticator)


@cache
def environment() -> jinja2.Environment:
    """The templates' environment (built once): autoescaped, undefined names are errors."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        {"moment": moment, "duration": duration, "number": number, "thousands": thousands}
    )
    return env


def moment(value: datetime | None) -> str:
    """A time as `2026-12-07 16:05:12` (UTC, as every time is stored)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """A duration as `850 ms`, `42.1 s`, `3 min 05 s`, `2 h 07 min` or `3 d 4 h`."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def number(value: float | None) -> str:
    """A metric value in six significant digits; NaN and the infinities by name."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.6g}"


def thousands(value: int) -> str:
    return f"{value:,}"
