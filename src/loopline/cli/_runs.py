"""`loopline runs ...`: listing, showing, comparing and managing runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from loopline.cli._output import (
    console,
    duration,
    moment,
    note_cut,
    number,
    piped,
    size,
    status,
)

if TYPE_CHECKING:
    from loopline.store import Run, RunLink

app = typer.Typer(help="Tracked runs: list, show, compare, delete.", no_args_is_help=True)

MAX_METRIC_COLUMNS = 4
MAX_PARAM_COLUMNS = 3


@app.command("ls")
def list_runs(
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Experiment name (repeatable); default: all."
    ),
    filter_: str | None = typer.Option(
        None, "--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'rf'\""
    ),
    order_by: list[str] | None = typer.Option(
        None, "--order-by", "-o", help="e.g. 'metrics.auc desc' (repeatable)."
    ),
    max_results: int = typer.Option(50, "--max-results", "-n", help="At most this many runs."),
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List runs, filtered and sorted.

    Example: loopline runs ls -e churn -f "metrics.auc > 0.9" -o "metrics.auc desc"
    """
    from loopline.cli._project import open_project
    from loopline.store.records import MAX_SEARCH_RESULTS

    open_project(metadata=False)
    probe = max_results + 1 if 0 < max_results < MAX_SEARCH_RESULTS else max_results
    found = _quick_listing(experiment, filter_, order_by, probe, deleted)
    if found is None:
        from loopline.tracking import search_runs

        found = search_runs(experiment or None, filter_, order_by or None, probe, "runs", deleted)
    if len(found) > max_results:
        found = found[:max_results]
        note_cut(max_results, "runs", "--max-results")
    if as_json:
        console.print_json(json.dumps([_run_json(run) for run in found]))
        return
    console.print(_runs_table(found, order_by or []))


@app.command("show")
def show(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a run: params, latest metrics, tags, code version, artifacts.

    Example: loopline runs show 3f2a
    """
    from loopline.cli._project import open_project
    from loopline.tracking import describe_link, get_run, lineage, list_artifacts

    open_project()
    found = get_run(run)
    artifacts = list_artifacts(found.id)
    links = [(link, describe_link(link)) for link in lineage(found.id)]
    if as_json:
        body = _run_json(found)
        body["artifacts"] = [{"path": a.name, "hash": a.ref, "size": a.size} for a in artifacts]
        body["lineage"] = [
            {
                "direction": link.direction.value,
                "kind": link.kind.value,
                "name": label,
                "ref": link.ref,
            }
            for link, label in links
        ]
        console.print_json(json.dumps(body))
        return
    _print_run(found, artifacts)
    if links:
        from rich.table import Table

        table = Table("Direction", "Kind", "What", title="Lineage", title_justify="left")
        for link, label in links:
            table.add_row(link.direction.value, link.kind.value.replace("_", " "), label)
        console.print(table)


@app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Two or more run ids or prefixes."),
    all_rows: bool = typer.Option(False, "--all", help="Also show params that are equal."),
) -> None:
    """Compare runs side by side; params that differ are highlighted.

    Example: loopline runs compare 3f2a 9c1d
    """
    from rich.table import Table

    from loopline.cli._project import open_project
    from loopline.errors import InvalidInput
    from loopline.tracking import get_run

    if len(runs) < 2:
        raise InvalidInput("runs compare needs at least two runs")
    open_project()
    found = [get_run(r) for r in runs]
    table = Table("", *(f"{r.name}\n[dim]{r.id[:8]}[/]" for r in found), title="Run comparison")
    table.add_row("status", *(status(r.status.value) for r in found))
    table.add_row("duration", *(duration(r.duration_s) for r in found))
    for key in sorted({k for r in found for k in r.params}):
        values = [r.params.get(key, "") for r in found]
        differs = len(set(values)) > 1
        if differs or all_rows:
            style = "bold yellow" if differs else ""
            table.add_row(f"params.{key}", *values, style=style)
    for key in sorted({k for r in found for k in r.metrics}):
        table.add_row(f"metrics.{key}", *(number(r.metrics.get(key)) for r in found))
    for key in sorted({k for r in found for k in r.tags}):
        table.add_row(f"tags.{key}", *(r.tags.get(key, "") for r in found), style="dim")
    console.print(table)


@app.command("delete")
def delete(runs: list[str] = typer.Argument(..., help="Run ids or prefixes.")) -> None:
    """Delete runs (soft: hidden from searches, restorable).

    Example: loopline runs delete 3f2a
    """
    from loopline.cli._project import open_project
    from loopline.tracking import delete_run, get_run

    open_project()
    for ref in runs:
        run_id = get_run(ref).id
        delete_run(run_id)
        console.print(f"deleted run {run_id}")


@app.command("restore")
def restore(runs: list[str] = typer.Argument(..., help="Run ids or prefixes.")) -> None:
    """Restore deleted runs.

    Example: loopline runs restore 3f2a
    """
    from loopline.cli._project import open_project
    from loopline.tracking import get_run, restore_run

    open_project()
    for ref in runs:
        run_id = get_run(ref).id
        restore_run(run_id)
        console.print(f"restored run {run_id}")


@app.command("end")
def end(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    run_status: str = typer.Option("FAILED", "--status", help="FINISHED, FAILED or KILLED."),
) -> None:
    """Mark a run ended, e.g. one whose process was killed while RUNNING.

    Example: loopline runs end 3f2a --status FAILED
    """
    from loopline.cli._project import open_project
    from loopline.tracking import end_run, get_run

    open_project()
    ended = end_run(run_status, run_id=get_run(run).id)
    console.print(f"run {ended.id} is {status(ended.status.value)}")


def _quick_listing(
    experiment: list[str] | None,
    filter_: str | None,
    order_by: list[str] | None,
    max_results: int,
    deleted: bool,
) -> list[Run] | None:
    """A plain listing (no filter, no sort) read without SQLAlchemy, when the store
    allows it (`store._quick_runs`); None sends the caller to `search_runs`. Never with
    a platform server: the local SQLite file (if any) is not where the runs are."""
    from loopline.project import stores
    from loopline.store._quick import Unanswered
    from loopline.store._quick_runs import quick_list_runs

    settings = stores().settings
    if filter_ or order_by or settings.server is not None:  # a server holds the runs
        return None
    store_uri = settings.store_uri
    try:
        return quick_list_runs(store_uri, experiment or None, max_results, deleted)
    except Unanswered:
        return None


def _runs_table(runs: list[Run], order_by: list[str]) -> object:
    from rich.table import Table

    wanted = [o.split()[0].split(".", 1)[1] for o in order_by if o.startswith("metric")]
    metric_keys = _common_keys([r.metrics for r in runs], wanted, MAX_METRIC_COLUMNS)
    varying = [
        k
        for k in _common_keys([r.params for r in runs], [], limit=100)
        if len({r.params.get(k) for r in runs}) > 1
    ][:MAX_PARAM_COLUMNS]
    several = len({r.experiment for r in runs}) > 1
    param_width = None if piped() else 14  # a terminal's width is shared; a pipe's is not
    table = Table(title="Runs")
    table.add_column("ID", no_wrap=True, min_width=8)
    table.add_column("Name", no_wrap=True)
    if several:
        table.add_column("Experiment", no_wrap=True)
    table.add_column("Status", no_wrap=True, min_width=8)
    table.add_column("Started", no_wrap=True, min_width=11)
    for key in metric_keys:
        table.add_column(key, justify="right", no_wrap=True, min_width=min(len(key), 12))
    for key in varying:
        table.add_column(f"[dim]{key}[/]", no_wrap=True, overflow="ellipsis", max_width=param_width)
    for run in runs:
        table.add_row(
            run.id[:8],
            run.name,
            *([run.experiment] if several else []),
            status(run.status.value),
            moment(run.start_time, short=True),
            *(number(run.metrics.get(k), digits=4) for k in metric_keys),
            *(run.params.get(k, "") for k in varying),
        )
    table.caption = f"{len(runs)} run(s)"
    return table


def _common_keys(
    mappings: list[dict[str, str]] | list[dict[str, float]], first: list[str], limit: int
) -> list[str]:
    """`first`, then the keys most runs have, up to `limit`."""
    counts: dict[str, int] = {}
    for mapping in mappings:
        for key in mapping:
            counts[key] = counts.get(key, 0) + 1
    rest = sorted((k for k in counts if k not in first), key=lambda k: (-counts[k], k))
    return [*[k for k in first if k in counts], *rest][:limit]


def _print_run(run: Run, artifacts: list[RunLink]) -> None:
    from rich.table import Table

    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    rows = [
        ("id", run.id),
        ("name", run.name),
        ("experiment", run.experiment),
        ("status", status(run.status.value)),
        ("user", run.user),
        ("started", moment(run.start_time)),
        ("ended", moment(run.end_time)),
        ("duration", duration(run.duration_s)),
        ("parent", run.parent_id or ""),
        ("command", run.source),
        ("git commit", run.code.commit or "(not in a git repository)"),
        ("git branch", run.code.branch or ""),
        ("uncommitted", _dirty(run)),
        ("python", run.python_version or ""),
        ("packages", (run.packages_hash or "")[:16]),
    ]
    if run.error:
        rows.append(("error", f"[red]{run.error}[/]"))
    for label, value in rows:
        info.add_row(label, value)
    console.print(info)
    for title, mapping in (("Params", run.params), ("Tags", run.tags)):
        if mapping:
            table = Table("Key", "Value", title=title, title_justify="left")
            for key, value in mapping.items():
                table.add_row(key, value)
            console.print(table)
    if run.metrics:
        table = Table("Metric", "Latest", title="Metrics", title_justify="left")
        for key, latest in run.metrics.items():
            table.add_row(key, number(latest))
        console.print(table)
    if artifacts:
        table = Table("Path", "Size", "BLAKE3", title="Artifacts", title_justify="left")
        for link in artifacts:
            table.add_row(link.name, size(link.size), link.ref[:16])
        console.print(table)


def _dirty(run: Run) -> str:
    if run.code.dirty is None:
        return ""
    if not run.code.dirty:
        return "no"
    return f"yes (diff {run.code.patch_hash[:12]})" if run.code.patch_hash else "yes"


def _run_json(run: Run) -> dict[str, object]:
    def finite(value: float) -> float | str:
        return value if value == value and abs(value) != float("inf") else number(value)

    return {
        "id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status.value,
        "start_time": run.start_time.isoformat(),
        "end_time": run.end_time.isoformat() if run.end_time else None,
        "user": run.user,
        "parent_id": run.parent_id,
        "source": run.source,
        "error": run.error,
        "code": {
            "commit": run.code.commit,
            "branch": run.code.branch,
            "dirty": run.code.dirty,
            "patch_hash": run.code.patch_hash,
        },
        "python_version": run.python_version,
        "packages_hash": run.packages_hash,
        "params": run.params,
        "metrics": {k: finite(v) for k, v in run.metrics.items()},
        "tags": run.tags,
    }
