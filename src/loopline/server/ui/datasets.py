"""Datasets: the list, a dataset's versions, one version and the diff of two versions.

`/datasets/{name}/{version}` shows what `loopline data show` knows of a version: its
files, schema, profile (a histogram per number column, bars of the most frequent values
per text column: SVG drawn here, see _figures) and its stored validation results with
their failing example rows. `/datasets/{name}/diff?a=1&b=2&key=id` compares two versions
with the core's `data.diff`: files, schema, column statistics, and rows matched by a key
column when one is chosen.

Versions in URLs are numbers: anything else is 400, as is a name no dataset can have;
an unknown dataset or version is 404. Every column name, value and message is text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from loopline import data
from loopline.errors import InvalidInput
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import bound_to
from loopline.server.ui import _figures
from loopline.server.ui._pages import page_router
from loopline.server.ui._render import render
from loopline.store import DatasetVersion, check_dataset_name

router = page_router()

MAX_VERSIONS = 100  # the newest versions listed on a dataset's page
MAX_FILES = 500  # the files listed on a version's page
MAX_VALIDATIONS = 5  # the newest validation results shown in full
MAX_NUMBER = 2**31 - 1  # a version number the stores can hold
MAX_ROW_DIFF_BYTES = 256 << 20  # versions larger than this are not matched row by row


@router.get("/datasets")
def datasets_page(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every dataset with its latest version."""
    with bound_to(request):
        found = data.list_datasets()
    return render(request, "datasets.html", {"datasets": found, "url_of": dataset_url})


@router.get("/datasets/{name}")
def dataset_page(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """A dataset's versions (the newest MAX_VERSIONS), each with its latest validation."""
    check_dataset_name(name)
    with bound_to(request):
        versions = data.log(name)
        if not versions:
            data.resolve(name)  # NotFound, saying what is missing
        validations = data.latest_validations(versions[:MAX_VERSIONS])
    context = {
        "name": versions[0].dataset,
        "versions": versions[:MAX_VERSIONS],
        "hidden": len(versions) - MAX_VERSIONS,
        "validations": validations,
        "version_url": version_url,
        "diff_url": diff_url(versions[0].dataset),
        "size": _figures.size,
    }
    return render(request, "dataset.html", context)


@router.get("/datasets/{name}/diff")
def diff_page(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Two versions compared (`a` the older, `b` the newer; by default the two newest);
    with `key`, their rows matched by that column. A key the tables cannot be matched by
    is said above the rest of the diff, with status 400; so are versions too large to be
    matched row by row while a page waits (the CLI's `data diff --key` has no limit)."""
    check_dataset_name(name)
    query = request.query_params
    for param in query:
        if param not in ("a", "b", "key"):
            raise InvalidInput(f"unknown query parameter {param!r}; expected a, b and key")
    key = query.get("key") or None
    status, key_error = 200, None
    with bound_to(request):
        newest = data.resolve(name)
        b = version_number(query["b"]) if "b" in query else newest.version
        a = version_number(query["a"]) if "a" in query else max(b - 1, 1)
        old, new = data.resolve(f"{newest.dataset}@{a}"), data.resolve(f"{newest.dataset}@{b}")
        if key is not None and max(old.total_size, new.total_size) > MAX_ROW_DIFF_BYTES:
            key_error, status, key = too_large_to_match(old, new), 400, None
        try:
            result = data.diff(old.ref, new.ref, key=key)
        except InvalidInput as exc:
            if key is None:
                raise
            key_error, status = exc.message, 400
            result = data.diff(old.ref, new.ref)
        old_profile, new_profile = data.profile_of(result.old), data.profile_of(result.new)
        numbers = [v.version for v in data.log(newest.dataset)]
    shared = []
    if old_profile is not None and new_profile is not None:
        newer = {column.name for column in new_profile.columns}
        shared = [column.name for column in old_profile.columns if column.name in newer]
    context = {
        "name": newest.dataset,
        "diff": result,
        "key": key,
        "key_error": key_error,
        "keys": shared,
        "shifts": [shift_view(shift) for shift in result.shifts],
        "rows": rows_view(result.rows),
        "numbers": numbers,
        "version_url": version_url,
        "dataset_href": dataset_url(newest.dataset),
        "short": _figures.short,
    }
    return render(request, "dataset_diff.html", context, status)


@router.get("/datasets/{name}/{version}")
def version_page(
    name: str, version: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """One version: its facts, files, schema, profile and validation results."""
    check_dataset_name(name)
    number = version_number(version)
    with bound_to(request):
        found = data.resolve(f"{name}@{number}")
        manifest = data.manifest_of(found)
        profile = data.profile_of(found)
        records = data.history(found.ref)
        results = [(r, data.read_validation(r)) for r in records[:MAX_VALIDATIONS]]
    files = sorted(manifest.entries, key=lambda entry: entry.path)
    context = {
        "version": found,
        "dataset_href": dataset_url(found.dataset),
        "files": files[:MAX_FILES],
        "hidden_files": len(files) - MAX_FILES,
        "profile": profile,
        "columns": [] if profile is None else [column_view(s) for s in profile.stats],
        "validations": [(record, failure_views(result)) for record, result in results],
        "older_validations": len(records) - len(results),
        "size": _figures.size,
        "short": _figures.short,
    }
    return render(request, "dataset_version.html", context)


def too_large_to_match(old: DatasetVersion, new: DatasetVersion) -> str:
    """Why rows are not matched here: matching first copies both versions into the
    server's cache and reads them whole, which a page should not wait for."""
    sizes = f"{_figures.size(old.total_size)} and {_figures.size(new.total_size)}"
    return (
        f"rows are matched by key here for versions up to {_figures.size(MAX_ROW_DIFF_BYTES)}; "
        f"these hold {sizes}: run `loopline data diff {old.ref} {new.ref} --key KEY`"
    )


# --- what the templates show ------------------------------------------------------------


@dataclass(frozen=True)
class ColumnView:
    """A profiled column with its figure: a histogram for numbers, bars for text."""

    stat: Any  # loopline.data.profile.ColumnProfile
    histogram: _figures.Histogram | None
    bars: tuple[_figures.ValueBar, ...]


@dataclass(frozen=True)
class FailureView:
    """A failed expectation with its example rows as a table (the failing column first)."""

    message: str
    kind: str
    column: str | None
    failed_count: int
    columns: list[str]
    rows: list[list[object]]


def column_view(stat: Any) -> ColumnView:
    return ColumnView(stat, figure(stat), _figures.value_bars(stat.top_values or []))


def failure_views(result: Any) -> list[FailureView]:
    """The failures of a `ValidationResult`, examples laid out as rows of one table."""
    views = []
    for failure in result.failures:
        columns: list[str] = []
        for example in failure.examples:
            columns.extend(key for key in example if key not in columns)
        columns.sort(key=lambda key: (key != "row", key != failure.expectation.column))
        rows = [[example.get(key) for key in columns] for example in failure.examples]
        views.append(
            FailureView(
                failure.message,
                failure.expectation.kind,
                failure.expectation.column,
                failure.failed_count,
                columns,
                rows,
            )
        )
    return views


def shift_view(shift: Any) -> dict[str, Any]:
    """A column's change of statistics, flagged when its PSI says a major shift (> 0.25)
    or its mean moved by more than half a standard deviation."""
    moved = (shift.psi is not None and shift.psi > 0.25) or (
        shift.mean_shift_std is not None and abs(shift.mean_shift_std) > 0.5
    )
    return {"shift": shift, "moved": moved, "old": figure(shift.old), "new": figure(shift.new)}


def figure(stat: Any) -> _figures.Histogram | None:
    """A column profile's histogram (None for a column that has none: text, booleans)."""
    return None if stat.histogram is None else _figures.histogram(*stat.histogram)


def rows_view(rows: Any) -> dict[str, Any] | None:
    """A `RowDiff`'s example rows as tables: added and removed rows whole, changed rows
    as (key, column, old, new)."""
    if rows is None:
        return None
    tables = {}
    for kind in ("added", "removed"):
        examples = rows.examples.get(kind) or []
        columns = list(examples[0]) if examples else []
        tables[kind] = (columns, [[row.get(c) for c in columns] for row in examples])
    changes = [
        (change["key"], column, values.get("old"), values.get("new"))
        for change in rows.examples.get("changed") or []
        for column, values in change["changes"].items()
    ]
    return {"diff": rows, "tables": tables, "changes": changes}


# --- URLs ---------------------------------------------------------------------------------


def version_number(text: str) -> int:
    """A version number from a URL: 1 or more, digits only (400 otherwise)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not (
        1 <= int(text) <= MAX_NUMBER
    ):
        raise InvalidInput(f"a version is a number from 1, got {text[:40]!r}")
    return int(text)


def dataset_url(name: str) -> str:
    return f"/datasets/{quote(name, safe='')}"


def version_url(version: DatasetVersion) -> str:
    return f"{dataset_url(version.dataset)}/{version.version}"


def diff_url(name: str, **params: object) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    return f"{dataset_url(name)}/diff" + (f"?{query}" if query else "")
