"""The audit log as a table: newest first, PAGE_SIZE events a page, filtered by the user
who acted, the action, the object (`churn`: the model or deployment churn and what is
under it, churn/3, churn@champion) and its type.

Everything is in the URL (`/audit?user=ana&action=alias.set&object=churn&type=model&
page=2`), so a filtered table is a link; the same URL asked by htmx for `#audit` answers
the table alone. A filter value no event has gives an empty table; one that no event
could have (a control character, an action that is not dotted words, a page that is
not a number) is a 400 with the reason above the table. The store counts and pages
with an index per filter (`AuditLog.events_page`), so 100,000 events cost one page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui._pages import page_router, wants_fragment
from loopline.server.ui._render import render
from loopline.server.ui.deployments import deployment_url, model_url
from loopline.store.deployments import DEPLOYMENT_NAME

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

    from loopline.store import AuditEvent, AuditPage

router = page_router()

TABLE_ID = "audit"
PAGE_SIZE = 50
MAX_PAGE = 10**6
MAX_TEXT = 256
ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,7}")
OBJECT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
KNOWN_TYPES = ("alias", "dataset", "deployment", "loop", "model", "model_version", "token")
DETAIL_CHARS = 300


@dataclass(frozen=True)
class AuditQuery:
    """What the URL asks of the table (see the module docstring)."""

    user: str = ""
    action: str = ""
    object: str = ""
    type: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, params: QueryParams) -> AuditQuery:
        """The table a URL's query asks for; InvalidInput names the first bad part."""
        values = {name: params.get(name, "").strip() for name in ("user", "action", "object")}
        values["type"] = params.get("type", "").strip()
        for name, value in values.items():
            if len(value) > MAX_TEXT or not value.isprintable():
                raise InvalidInput(
                    f"{name} must be at most {MAX_TEXT} printable characters, got {value[:40]!r}"
                )
        if values["action"] and not ACTION.fullmatch(values["action"]):
            raise InvalidInput(
                f"action must be dotted words like alias.set, got {values['action'][:40]!r}"
            )
        if values["type"] and not OBJECT_TYPE.fullmatch(values["type"]):
            raise InvalidInput(f"type must be a word like model, got {values['type'][:40]!r}")
        page_text = params.get("page", "1").strip()
        if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
            raise InvalidInput(f"page must be a whole number from 1, got {page_text[:20]!r}")
        return cls(**values, page=int(page_text))

    @property
    def filtered(self) -> bool:
        return bool(self.user or self.action or self.object or self.type)

    def url(self, **changes: Any) -> str:
        """The URL of this table with some parts changed (page, a filter, ...)."""
        query = replace(self, **changes)
        pairs = [
            (name, value)
            for name, value in (
                ("user", query.user),
                ("action", query.action),
                ("object", query.object),
                ("type", query.type),
            )
            if value
        ]
        if query.page > 1:
            pairs.append(("page", str(query.page)))
        return "/audit" + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")


@router.get("/audit")
def audit(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """The audit log's table (the page, or `#audit` alone for htmx)."""
    from loopline.registry import audit_page

    query, page, error, status = AuditQuery(), None, None, 200
    with bound_to(request):
        try:
            query = AuditQuery.from_query(request.query_params)
            page = audit_page(
                actor=query.user or None,
                action=query.action or None,
                object_prefix=query.object or None,
                object_type=query.type or None,
                offset=(query.page - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
            )
        except InvalidInput as exc:  # shown above the table, as the runs table does
            error, status = exc.message, 400
    context = {
        "query": query,
        "page": page,
        "error": error,
        "table_id": TABLE_ID,
        "rows": [row(event) for event in page.events] if page else [],
        "pages": pages(page),
        "known_types": KNOWN_TYPES,
    }
    template = "_audit_table.html" if wants_fragment(request, TABLE_ID) else "audit.html"
    return render(request, template, context, status)


def pages(page: AuditPage | None) -> dict[str, int]:
    """first, last (1-based positions shown), number of pages, and whether there is more."""
    if page is None:
        return {"first": 0, "last": 0, "count": 0, "more": 0}
    last = page.offset + len(page.events)
    return {
        "first": page.offset + 1 if page.events else 0,
        "last": last,
        "count": (page.total + PAGE_SIZE - 1) // PAGE_SIZE,
        "more": int(last < page.total),
    }


def row(event: AuditEvent) -> dict[str, Any]:
    """An event as the table shows it: a link to its object's page where there is one,
    and its before/after as short JSON."""
    href = object_url(event.object_type, event.object_id)
    deployment = (event.after or {}).get("deployment")
    if event.object_type == "loop" and isinstance(deployment, str) and is_name(deployment):
        href = deployment_url(deployment) + "/monitoring"  # where a loop's steps are shown
    return {
        "event": event,
        "href": href,
        "before": _brief(event.before),
        "after": _brief(event.after),
    }


def is_name(text: str) -> bool:
    """Whether `text` could name a deployment (what a loop event says it acted on)."""
    return DEPLOYMENT_NAME.fullmatch(text) is not None


def object_url(object_type: str, object_id: str) -> str | None:
    """The page of an event's object, for the types that have one."""
    if object_type == "deployment":
        return deployment_url(object_id)
    if object_type == "model_version" and "/" in object_id:
        return model_url(object_id)
    if object_type == "model" and re.fullmatch(r"[^/@]+", object_id):
        return f"/models/{quote(object_id, safe='')}"
    return None


def _brief(value: dict[str, Any] | None) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
