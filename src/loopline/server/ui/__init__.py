"""The web UI: HTML pages over the server's own stores, served beside the API.

Pages are rendered on the server (Jinja2, templates/) and read the stores in-process
through the core's functions (`with bound_to(request): ...`), never through the HTTP API.
htmx (vendored, static/vendor/) swaps parts of a page; every page also works without
JavaScript, by plain links and forms to the same URLs. No inline script or style, no CDN:
the Content-Security-Policy of _render allows only this server's /static files.

One module per area of pages, each with a `router` from `_pages.page_router()`:
`static` (the files), `login`, `experiments` (the home page and the runs table), `runs`
(a run's page), `artifacts` (an artifact's preview and bytes), `charts` (metric charts'
JSON), `compare` (runs side by side), `datasets`, `models`, `deployments`, `monitoring`
(drift, alerts, retrain loops, reports) and `audit`.

To add a page:
1. a route in its area's module (or a new module named in PAGES), declaring its
   permission like any route (`caller: Caller = requires(Role.READER)`), reading the
   stores in `with bound_to(request):` and answering `render(request, "x.html", {...})`;
2. its template in templates/, `{% extends "base.html" %}` with a `content` block (and a
   `scripts` block for a page script in static/, e.g. uPlot for charts);
3. a link in `_render.NAV` if it opens a new area;
4. tests in tests/ui/: over HTTP (`ui_client`) for answers, escaping and errors, in
   Chromium (`browser`) for what the browser does; `test_every_page_loads` lists it.
Errors need no code: `_pages.PageRoute` answers them as HTML pages, and a missing
sign-in as a redirect to /login.
"""

from __future__ import annotations

PAGES: tuple[str, ...] = (
    "static",
    "login",
    "experiments",
    "runs",
    "artifacts",
    "charts",
    "compare",
    "datasets",
    "models",
    "deployments",
    "monitoring",
    "audit",
)
"""The page modules `create_app` mounts, each with a `router`."""
