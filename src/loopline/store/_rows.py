"""Turning result rows into records: a run with its params, metrics and tags."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from loopline.redact import redact_command, redact_text
from loopline.store import _metrics
from loopline.store._schema import params, tags
from loopline.store.records import (
    CodeVersion,
    Experiment,
    Run,
    RunStatus,
    ms_to_datetime,
)

CHUNK = 900  # ids per IN (...) list; SQLite allows 32,766 variables, PostgreSQL 65,535


def chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


class RunDetails:
    """Params, latest metrics and tags of a set of runs, loaded in a few queries."""

    def __init__(self) -> None:
        self.params: dict[str, dict[str, str]] = {}
        self.metrics: dict[str, dict[str, float]] = {}
        self.tags: dict[str, dict[str, str]] = {}

    @classmethod
    def load(cls, conn: Connection, run_ids: list[str]) -> RunDetails:
        details = cls()
        for chunk in chunks(run_ids):
            for table, target in ((params, details.params), (tags, details.tags)):
                stmt = select(table.c.run_id, table.c.key, table.c.value).where(
                    table.c.run_id.in_(chunk)
                )
                for run_id, key, value in conn.execute(stmt):
                    target.setdefault(run_id, {})[key] = value
            for run_id, key, value in _metrics.latest(conn, chunk):
                details.metrics.setdefault(run_id, {})[key] = value
        return details

    def run(self, row: Row[Any]) -> Run:
        return Run(
            id=row.id,
            experiment_id=row.experiment_id,
            experiment=row.experiment_name,
            name=row.name,
            status=RunStatus(row.status),
            start_time=ms_to_datetime(row.start_time),
            end_time=None if row.end_time is None else ms_to_datetime(row.end_time),
            parent_id=row.parent_id,
            user=row.user,
            # masked again on the way out: rows written before redaction existed
            source=redact_command(row.source),
            error=None if row.error is None else redact_text(row.error),
            code=CodeVersion(row.git_commit, row.git_branch, row.git_dirty, row.git_patch_hash),
            python_version=row.python_version,
            packages_hash=row.packages_hash,
            deleted=row.deleted_at is not None,
            params=dict(sorted(self.params.get(row.id, {}).items())),
            metrics=dict(sorted(self.metrics.get(row.id, {}).items())),
            tags=dict(sorted(self.tags.get(row.id, {}).items())),
        )


def experiment_record(
    row: Row[Any], run_count: int | None = None, last_run_at: datetime | None = None
) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        description=row.description,
        deleted=row.deleted_at is not None,
        run_count=run_count,
        last_run_at=last_run_at,
    )
