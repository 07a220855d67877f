"""The runs table of an experiment: what its URL asks for, and one page of it.

Everything a table shows is in its URL's query, so that a link, the browser's history
and a page without JavaScript show the same table htmx swaps in:

    filter=<search_runs filter>   order=<field> asc|desc   page=<1-based>
    col=<params.x|metrics.y|tags.z> (repeated; none: the first metrics and params)

Sorting, counting and paging are done by the database (`search_runs_page`), PAGE_SIZE
runs at a time, so that an experiment of 30,000 runs costs one page's worth of work. The
column picker offers the keys of the page's runs and of the experiment's newest 1,000
(KEYS_FROM_NEWEST; a key only older runs hold can still be named in the URL).
Every column sorts: the fixed ones (name, status, start, duration, user, commit) as run
attributes, the chosen ones as params (text order, as stored), metrics or tags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from loopline.errors import InvalidInput
from loopline.expr import render_name
from loopline.store import RunKeys
from loopline.store.query import Field, OrderBy
from loopline.tracking import parse_order_by, run_keys, search_runs_page

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

    from loopline.store import Run, RunsPage

PAGE_SIZE = 50
MAX_COLUMNS = 60
DEFAULT_KEYS = 5  # metrics, then params, shown when the URL chooses no column
KEYS_FROM_NEWEST = 1_000  # the picker offers the keys of these runs and of the page shown
PREFIXES = {"param": "params", "metric": "metrics", "tag": "tags", "attribute": "attributes"}
FIRST_DESCENDING = {"metric", "start_time", "duration"}  # newest, longest, largest first


@dataclass(frozen=True)
class Column:
    """A column of the table: its header and the field it shows and sorts by."""

    label: str
    field: Field

    @property
    def spec(self) -> str:
        return spec_of(self.field)


def spec_of(field: Field) -> str:
    """A field as a filter or the URL writes it (`metrics.auc`, quoted where needed)."""
    return render_name((PREFIXES[field.kind], field.key))


FIXED = (
    Column("Name", Field("attribute", "name")),
    Column("Status", Field("attribute", "status")),
    Column("Started (UTC)", Field("attribute", "start_time")),
    Column("Duration", Field("attribute", "duration")),
    Column("User", Field("attribute", "user")),
    Column("Commit", Field("attribute", "git_commit")),
)


@dataclass(frozen=True)
class TableQuery:
    """What the URL asks of the table (see the module docstring)."""

    filter: str = ""
    order: OrderBy | None = None
    page: int = 1
    chosen: tuple[Field, ...] = ()

    @classmethod
    def from_query(cls, params: QueryParams) -> TableQuery:
        """The table a URL's query asks for; InvalidInput (InvalidFilter for an order
        that does not parse) names the first bad part."""
        order_text = params.get("order", "").strip()
        order = parse_order_by([order_text])[0] if order_text else None
        page_text = params.get("page", "1").strip()
        if not page_text.isdigit() or not 1 <= int(page_text) <= 10**6:
            raise InvalidInput(f"page must be a whole number from 1, got {page_text[:20]!r}")
        specs = params.getlist("col")
        if len(specs) > MAX_COLUMNS:
            raise InvalidInput(f"at most {MAX_COLUMNS} columns, got {len(specs)}")
        chosen = tuple(dict.fromkeys(_column_field(spec) for spec in specs))
        return cls(params.get("filter", "").strip(), order, int(page_text), chosen)

    @property
    def order_spec(self) -> str:
        """The order as the URL writes it (`metrics.auc desc`), or ""."""
        if self.order is None:
            return ""
        direction = "desc" if self.order.descending else "asc"
        return f"{spec_of(self.order.field)} {direction}"

    @property
    def chosen_specs(self) -> list[str]:
        return [spec_of(field) for field in self.chosen]

    def url(self, base: str, **changes: object) -> str:
        """The URL of this table at `base` with some parts changed (page, order, ...)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        pairs: list[tuple[str, str]] = []
        if query.filter:
            pairs.append(("filter", query.filter))
        if query.order is not None:
            pairs.append(("order", query.order_spec))
        if query.page > 1:
            pairs.append(("page", str(query.page)))
        pairs += [("col", spec) for spec in query.chosen_specs]
        return base + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")

    def sorted_by(self, field: Field) -> str | None:
        """'asc' or 'desc' when the table is sorted by `field`, else None."""
        if self.order is None or self.order.field != field:
            return None
        return "desc" if self.order.descending else "asc"

    def sort_url(self, base: str, field: Field) -> str:
        """The URL that sorts by `field`: the other way round when sorted by it already."""
        current = self.sorted_by(field)
        if current is None:
            descending = field.kind in FIRST_DESCENDING or field.key in FIRST_DESCENDING
        else:
            descending = current == "asc"
        return self.url(base, order=OrderBy(field, descending), page=1)


@dataclass(frozen=True)
class RunsTable:
    """One page of an experiment's runs, with the columns that show them."""

    page: RunsPage
    columns: tuple[Column, ...]  # the chosen or default keyed columns
    keys: RunKeys  # every key the experiment's runs hold: the column picker's choices

    @property
    def first(self) -> int:
        return self.page.offset + 1 if self.page.runs else 0

    @property
    def last(self) -> int:
        return self.page.offset + len(self.page.runs)

    @property
    def has_next(self) -> bool:
        return self.last < self.page.total


def load_table(experiment: str, query: TableQuery) -> RunsTable:
    """The page of `experiment`'s runs the query asks for (in a bound Client's stores)."""
    page = search_runs_page(
        experiment,
        query.filter or None,
        query.order_spec or None,
        offset=(query.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    keys = _with_keys_of(page.runs, run_keys(experiment, newest=KEYS_FROM_NEWEST))
    fields = query.chosen or default_columns(keys)
    return RunsTable(page, tuple(Column(field.key, field) for field in fields), keys)


def _with_keys_of(runs: list[Run], keys: RunKeys) -> RunKeys:
    """`keys` and those of `runs`: the picker offers every key of the page shown, and of
    the experiment's newest runs (all of its runs would cost ~150 ms at 30,000)."""
    return RunKeys(
        params=tuple(sorted({*keys.params, *(k for run in runs for k in run.params)})),
        metrics=tuple(sorted({*keys.metrics, *(k for run in runs for k in run.metrics)})),
        tags=tuple(sorted({*keys.tags, *(k for run in runs for k in run.tags)})),
    )


def default_columns(keys: RunKeys) -> tuple[Field, ...]:
    """The first metrics and params (by name) when the URL chooses no column."""
    metrics = [Field("metric", key) for key in keys.metrics[:DEFAULT_KEYS]]
    params = [Field("param", key) for key in keys.params[:DEFAULT_KEYS]]
    return (*metrics, *params)


def choices(keys: RunKeys) -> list[Column]:
    """Every column the picker offers: metrics, params, then tags."""
    kinds = (("metric", keys.metrics), ("param", keys.params), ("tag", keys.tags))
    return [Column(key, Field(kind, key)) for kind, found in kinds for key in found]  # type: ignore[arg-type]


def _column_field(spec: str) -> Field:
    """The field of a `col` value: a param, metric or tag (attributes are always shown)."""
    problem = InvalidInput(f"col {spec[:60]!r} is not params.NAME, metrics.NAME or tags.NAME")
    try:
        order = parse_order_by([spec])[0]
    except InvalidInput:
        raise problem from None
    if order.field.kind == "attribute" or spec.lower().split()[-1:] in (["asc"], ["desc"]):
        raise problem
    return order.field
