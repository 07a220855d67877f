"""A run's artifacts: the preview page of one, its bytes, and an HTML report to frame.

The artifact's path travels in the query (`?path=plots/roc.png`), where any name a run
may hold fits (a '%' in a name would be refused in the URL's path by the guard). It is
checked as a logical path (`..`, a leading `/`, a backslash... -> 400) and looked up by
exact name in the run's own manifest (`tracking.open_artifact`), so no spelling reaches
another run's files or anything outside the artifact store.

- `/runs/{id}/artifact?path=P`: the preview page (see _previews).
- `/runs/{id}/artifact/raw?path=P`: the bytes. A raster image as its image type (for an
  <img>), anything else as `application/octet-stream` with `Content-Disposition:
  attachment` (a download; never rendered by the browser as this origin's page);
  `&download=1` makes an image a download too. Every answer has `nosniff` and a
  `Content-Security-Policy: sandbox`, in case a browser opens it anyway.
- `/runs/{id}/artifact/report?path=P`: an HTML artifact for the preview's
  `<iframe sandbox>`, served with `Content-Security-Policy: sandbox` (an opaque origin:
  no access to our cookies, pages or API, no scripts, no forms) that lets it show only
  its own inline styles and `data:` images. It is framed by our page only
  (`frame-ancestors 'self'`).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from loopline.errors import MalformedRequest
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router
from loopline.server.ui._previews import REPORT_MAX, image_type, is_report, preview, size_text
from loopline.server.ui._render import render
from loopline.server.ui.experiments import experiment_url
from loopline.store._names import check_run_prefix
from loopline.tracking import get_run, open_artifact

router = page_router()

IN_MEMORY_MAX = 8 << 20  # bytes answered whole; a larger artifact is streamed
DOWNLOAD_POLICY = "sandbox; default-src 'none'"
REPORT_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src data:; frame-ancestors 'self'"
)


def artifact_url(run_id: str, path: str, view: str = "", **extra: str) -> str:
    """The URL of an artifact's page (`view` ""), bytes ("raw") or report ("report")."""
    query = urlencode({"path": path, **extra}, quote_via=quote)
    return f"/runs/{run_id}/artifact{'/' + view if view else ''}?{query}"


@router.get("/runs/{run_id}/artifact")
def artifact_page(
    run_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """One artifact: its name, size and hash, a download link and its preview."""
    path = _path(request)
    with bound_to(request):
        link, reader = open_artifact(check_run_prefix(run_id), path)
        shown = preview(link.name, reader)
        run = get_run(link.run_id)
    context = {
        "run": run,
        "experiment_href": experiment_url(run.experiment),
        "artifact": link,
        "size": size_text(reader.size),
        "shown": shown,
        "raw_url": artifact_url(run.id, link.name, "raw"),
        "download_url": artifact_url(run.id, link.name, "raw", download="1"),
        "report_url": artifact_url(run.id, link.name, "report"),
    }
    return render(request, "artifact.html", context)


@router.get("/runs/{run_id}/artifact/raw")
def artifact_bytes(
    run_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """The artifact's bytes: an image to show, or else a download (see the module)."""
    path = _path(request)
    download = request.query_params.get("download", "") not in ("", "0")
    with bound_to(request):
        link, reader = open_artifact(check_run_prefix(run_id), path)
    media_type = None if download else image_type(link.name)
    disposition = "inline" if media_type else "attachment"
    headers = {
        "Content-Disposition": _disposition(disposition, link.name),
        "Content-Security-Policy": DOWNLOAD_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(reader.size),
    }
    media_type = media_type or "application/octet-stream"
    if reader.size <= IN_MEMORY_MAX:
        return Response(reader.read(), headers=headers, media_type=media_type)
    return StreamingResponse(reader.pieces(), headers=headers, media_type=media_type)


@router.get("/runs/{run_id}/artifact/report")
def artifact_report(
    run_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """An HTML artifact, sandboxed by its own policy, for the preview's iframe."""
    path = _path(request)
    with bound_to(request):
        link, reader = open_artifact(check_run_prefix(run_id), path)
        if not is_report(link.name):
            raise MalformedRequest(f"{link.name!r} is not an HTML report (.html, .htm)")
        if reader.size > REPORT_MAX:
            raise MalformedRequest(f"{link.name!r} is over {size_text(REPORT_MAX)}: download it")
        body = reader.read()
    headers = {
        "Content-Disposition": _disposition("inline", link.name),
        "Content-Security-Policy": REPORT_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
    }
    return Response(body, headers=headers, media_type="text/html; charset=utf-8")


def _path(request: Request) -> str:
    """The `path` query parameter (one, non-empty): the artifact's logical path."""
    found = request.query_params.getlist("path")
    if len(found) != 1 or not found[0]:
        raise MalformedRequest("give the artifact's path once: ?path=folder/file.ext")
    return found[0]


def _disposition(kind: str, name: str) -> str:
    """A Content-Disposition naming the file by its last segment (RFC 6266: an ASCII
    fallback, and the UTF-8 name percent-encoded)."""
    base = name.rsplit("/", 1)[-1]
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in base
    )
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"
