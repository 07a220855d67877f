"""Reading runs back: search with a filter language, get one run, metric history."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, overload

from loopline.errors import InvalidInput, NotFound
from loopline.project import stores
from loopline.store import Experiment, LinkKind, MetricPoint, Run, RunKeys, RunLink, RunsPage
from loopline.tracking import inputs
from loopline.tracking._filter import parse_filter, parse_order_by
from loopline.tracking.inputs import DataFrameInput, read_input
from loopline.tracking.runs import flush

if TYPE_CHECKING:
    import pandas as pd

RUNS_PAGE = 1_000  # runs in a list from search_runs when max_results is not given


@overload
def search_runs(
    experiment: str | Sequence[str] | None = ...,
    filter: str | None = ...,
    order_by: Sequence[str] | str | None = ...,
    max_results: int | None = ...,
    output: Literal["runs"] = ...,
    include_deleted: bool = ...,
) -> list[Run]: ...


@overload
def search_runs(
    experiment: str | Sequence[str] | None = ...,
    filter: str | None = ...,
    order_by: Sequence[str] | str | None = ...,
    max_results: int | None = ...,
    *,
    output: Literal["pandas"],
    include_deleted: bool = ...,
) -> pd.DataFrame: ...


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int | None = None,
    output: Literal["runs", "pandas"] = "runs",
    include_deleted: bool = False,
) -> list[Run] | pd.DataFrame:
    """Runs of `experiment` (a name, a list of names, or None for all) matching `filter`.

    Example: `search_runs("churn", "metrics.auc > 0.9 and params.model = 'rf'",
    order_by=["metrics.auc desc"])`. Returns Run objects, or with `output="pandas"` a
    DataFrame with one row per run and `params.*`, `metrics.*`, `tags.*` columns.

    Without `max_results`, a DataFrame holds every matching run; a list of Run objects
    holds the first RUNS_PAGE (1,000) and warns (UserWarning) when more matched, so
    that results are never cut silently. An explicit `max_results` (1..50,000) is
    obeyed as given. Raises InvalidFilter (pointing at the offending token) for a
    filter that does not parse, NotFound for an unknown experiment.
    """
    if output not in ("runs", "pandas"):
        raise InvalidInput(f"output must be 'runs' or 'pandas', got {output!r}")
    condition = parse_filter(filter)
    order = parse_order_by([order_by] if isinstance(order_by, str) else order_by)
    flush()  # this process's own buffered points count too
    opened = stores()
    experiment_ids = None
    if experiment is not None:
        names = [experiment] if isinstance(experiment, str) else list(experiment)
        experiment_ids = [opened.metadata.runs.get_experiment(name).id for name in names]
    if max_results is not None or output == "pandas":
        found = opened.metadata.runs.search_runs(
            experiment_ids, condition, order, max_results, include_deleted
        )
        return runs_frame(found) if output == "pandas" else found
    found = opened.metadata.runs.search_runs(
        experiment_ids, condition, order, RUNS_PAGE + 1, include_deleted
    )
    if len(found) > RUNS_PAGE:
        warnings.warn(
            f"search_runs returned the first {RUNS_PAGE:,} matching runs; more matched. "
            "Pass max_results=N (up to 50,000) for more, or output='pandas' for all.",
            UserWarning,
            stacklevel=2,
        )
        del found[RUNS_PAGE:]
    return found


def search_runs_page(
    experiment: str,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    *,
    offset: int = 0,
    limit: int = 50,
) -> RunsPage:
    """One page of `experiment`'s runs matching `filter`, in `order_by`'s order, with the
    number that match in all: what a runs table shows (its sorting, counting and paging
    done by the database). Raises InvalidFilter and NotFound as search_runs does."""
    condition = parse_filter(filter)
    order = parse_order_by([order_by] if isinstance(order_by, str) else order_by)
    runs = stores().metadata.runs
    experiment_id = runs.get_experiment(experiment).id
    return runs.search_runs_page([experiment_id], condition, order, offset=offset, limit=limit)


def run_keys(experiment: str, *, newest: int | None = None) -> RunKeys:
    """The param, metric and tag keys that `experiment`'s runs were logged with (its
    `newest` runs only when given: a bound on the work for an experiment of many runs)."""
    runs = stores().metadata.runs
    return runs.run_keys(runs.get_experiment(experiment).id, newest=newest)


def get_run(run_id: str) -> Run:
    """One run by id (or a unique prefix of it): params, latest metrics, tags, status."""
    flush()
    metadata = stores().metadata
    return metadata.runs.get_run(metadata.runs.resolve_run_id(run_id))


def get_metric_history(run_id: str, key: str) -> list[MetricPoint]:
    """Every point logged for `key` in the run, in step order."""
    flush()
    metadata = stores().metadata
    return metadata.runs.get_metric_history(metadata.runs.resolve_run_id(run_id), key)


def lineage(run_id: str) -> list[RunLink]:
    """What the run read and wrote besides its artifacts: dataset versions, models, ..."""
    metadata = stores().metadata
    links = metadata.runs.list_links(metadata.runs.resolve_run_id(run_id))
    return [link for link in links if link.kind is not LinkKind.ARTIFACT]


def describe_link(link: RunLink) -> str:
    """A readable name for a link's target, e.g. 'credit@3' for a dataset version."""
    if link.kind is LinkKind.DATASET_VERSION:
        try:
            return stores().metadata.datasets.get_version_by_id(link.ref).ref
        except NotFound:
            return f"{link.name} (version {link.ref[:8]}, deleted)"
    if link.kind is LinkKind.DATAFRAME:
        try:
            found = read_input(link, stores())
        except NotFound:
            return f"{link.name} (record missing)"
        purpose = f", {found.context}" if found.context else ""
        return f"{link.name} (dataframe, {found.rows} rows x {len(found.columns)} columns{purpose})"
    return f"{link.name} ({link.ref[:12]})"


def list_inputs(run_id: str) -> list[DataFrameInput]:
    """The DataFrames a run recorded with `log_input`: digest, schema, profile, context."""
    opened = stores()
    return inputs.list_inputs(opened.metadata.runs.resolve_run_id(run_id), opened)


def list_experiments() -> list[Experiment]:
    return stores().metadata.runs.list_experiments()


def delete_run(run_id: str) -> None:
    """Hide a run from searches (soft delete; `restore_run` brings it back)."""
    metadata = stores().metadata
    metadata.runs.set_deleted(metadata.runs.resolve_run_id(run_id), True)


def restore_run(run_id: str) -> None:
    metadata = stores().metadata
    metadata.runs.set_deleted(metadata.runs.resolve_run_id(run_id), False)


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: attributes, then params.*, metrics.*, tags.* columns."""
    import pandas as pd

    records = []
    for run in runs:
        record: dict[str, object] = {
            "run_id": run.id,
            "experiment": run.experiment,
            "name": run.name,
            "status": run.status.value,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "user": run.user,
            "parent_id": run.parent_id,
            "git_commit": run.code.commit,
        }
        record.update({f"params.{k}": v for k, v in run.params.items()})
        record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        record.update({f"tags.{k}": v for k, v in run.tags.items()})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "experiment", "name", "status", "start_time"])
    fixed = [c for c in frame.columns if "." not in c]
    group = {"params": 0, "metrics": 1, "tags": 2}
    keyed = sorted(
        (c for c in frame.columns if "." in c), key=lambda c: (group[c.split(".")[0]], c)
    )
    return frame[fixed + keyed]
