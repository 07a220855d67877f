"""Writing a run copied from another tool (an MLflow store) in one transaction.

An imported run keeps its own times, status and full metric history, which the tracking
API (that stamps "now") cannot give it. It is keyed by a tag holding the source's run id
(`key_tag`, e.g. `mlflow.run_id`), so importing again finds it: a run whose source
changed is brought up to date (row, params, tags and every metric point replaced;
artifacts re-pointed by name), in one transaction, so a run is either imported whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from loopline.errors import InvalidInput
from loopline.redact import redact_command
from loopline.store import _metrics, _run_values
from loopline.store._names import check_id, check_run_name, friendly_run_name
from loopline.store._schema import latest_metrics, metric_points, params, runs, tags
from loopline.store.records import Direction, LinkKind, RunStatus, new_id

KEPT_TAGS = "loopline.import."  # tags an update keeps: notes written after the run

MetricSeries = Sequence[tuple[float, int, int]]
"""(value, step, timestamp_ms) of one metric key, in any order; NaN is kept (as NULL)."""


@dataclass(frozen=True)
class ImportedRun:
    """A run as another tool stored it; times are epoch milliseconds, UTC."""

    key_tag: str  # the tag that holds the source's run id
    key: str  # the source's run id
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None = None
    user: str = ""
    source: str = ""
    deleted_time: int | None = None  # soft-deleted in the source
    parent_id: str | None = None  # a loopline run id, already imported
    preferred_id: str | None = None  # used as the run's id when free (32 hex)
    params: Mapping[str, object] = field(default_factory=dict)
    tags: Mapping[str, object] = field(default_factory=dict)
    metrics: Mapping[str, MetricSeries] = field(default_factory=dict)
    artifacts: Sequence[_run_values.Link] = ()


def find_imported(conn: Connection, key_tag: str, marker: str) -> dict[str, tuple[str, str]]:
    """source id -> (loopline run id, the run's `marker` tag or "") of imported runs."""
    keyed = select(tags.c.run_id, tags.c.value).where(tags.c.key == key_tag)
    marked = select(tags.c.run_id, tags.c.value).where(tags.c.key == marker)
    marks = dict(list(conn.execute(marked)))
    return {str(value): (run_id, marks.get(run_id, "")) for run_id, value in conn.execute(keyed)}


def write_imported(conn: Connection, experiment_id: str, run: ImportedRun) -> str:
    """Insert `run`, or replace what an earlier import of it wrote; returns its id."""
    wanted_params = _run_values.param_values(run.params)
    wanted_tags = _run_values.tag_values({**run.tags, run.key_tag: run.key})
    points = _points(run.metrics)
    values = {
        "experiment_id": experiment_id,
        "name": check_run_name(run.name) if run.name.strip() else None,
        "status": RunStatus(run.status).value,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "parent_id": run.parent_id,
        "user": run.user[:256],
        "source": redact_command(run.source),
        "deleted_at": None
        if run.deleted_time is None
        else datetime.fromtimestamp(run.deleted_time / 1000, UTC),
    }
    found = conn.execute(
        select(tags.c.run_id).where(tags.c.key == run.key_tag, tags.c.value == run.key)
    ).first()
    if found is None:
        run_id = _free_id(conn, run.preferred_id)
        values["name"] = values["name"] or friendly_run_name(run_id)
        conn.execute(runs.insert().values(id=run_id, **values))
    else:
        run_id = str(found.run_id)
        values["name"] = values["name"] or friendly_run_name(run_id)
        conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
        for table in (params, metric_points, latest_metrics):
            conn.execute(table.delete().where(table.c.run_id == run_id))
        # the importer's own notes (a model version it could not re-package) stay
        conn.execute(
            tags.delete().where(tags.c.run_id == run_id, tags.c.key.notlike(KEPT_TAGS + "%"))
        )
    if wanted_params:
        _run_values.insert_params(conn, run_id, wanted_params)
    _run_values.replace_tags(conn, run_id, wanted_tags)
    if points:
        _metrics.insert_points(conn, [(run_id, *point) for point in points])
    if run.artifacts:
        _run_values.replace_links(
            conn, run_id, Direction.OUTPUT, LinkKind.ARTIFACT, list(run.artifacts)
        )
    return run_id


def _points(metrics: Mapping[str, MetricSeries]) -> list[tuple[str, float, int, int]]:
    """(key, value, step, timestamp) of every point, checked: keys as the store takes
    them, finite or NaN values (an infinity is stored as MLflow stores it, as a float)."""
    from loopline.store._names import check_key

    points = []
    for key, series in metrics.items():
        check_key("metric", key)
        for value, step, timestamp in series:
            if not isinstance(step, int) or not isinstance(timestamp, int):
                raise InvalidInput(f"metric {key!r}: step and timestamp must be integers")
            points.append((key, float(value), step, timestamp))
    return points


def _free_id(conn: Connection, preferred: str | None) -> str:
    if preferred is not None:
        try:
            candidate = check_id("run", preferred)
        except InvalidInput:
            return new_id()
        if conn.execute(select(runs.c.id).where(runs.c.id == candidate)).first() is None:
            return candidate
    return new_id()
