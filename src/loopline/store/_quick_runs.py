"""A plain run listing answered without SQLAlchemy, on a SQLite store.

`loopline runs ls` with no filter and no sort asks for the newest runs of some (or all)
experiments. Importing SQLAlchemy and opening an engine cost more than the query and the
table together (~0.2 s of a ~0.45 s command), so this module reads SQLite directly,
read-only, with the same order as `RunStore.search_runs` (newest start first, then
id) and the same records (`RunDetails.run`). It answers only what it can answer exactly
(see `_quick.read_only`); anything else is Unanswered and the caller asks the metadata
store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from loopline.redact import redact_command, redact_text
from loopline.store._quick import Unanswered, as_int, as_text, read_only, sqlite_path
from loopline.store.records import (
    MAX_SEARCH_RESULTS,
    CodeVersion,
    Run,
    RunStatus,
    ms_to_datetime,
    stored_float,
)

_COLUMNS = (
    "r.id, r.experiment_id, e.name, r.name, r.status, r.start_time, r.end_time, r.parent_id,"
    " r.user, r.source, r.error, r.git_commit, r.git_branch, r.git_dirty, r.git_patch_hash,"
    " r.python_version, r.packages_hash, r.deleted_at"
)
_CHUNK = 500  # ids per IN (...) list, below SQLite's variable limit


def quick_list_runs(
    store_uri: str,
    experiments: Sequence[str] | None,
    max_results: int,
    include_deleted: bool = False,
) -> list[Run]:
    """The newest `max_results` runs of `experiments` (names or ids; None: all).

    Raises Unanswered when this cannot answer as `search_runs` would: not a plain SQLite
    file at HEAD, or an experiment that is not found (the metadata store then raises
    its own NotFound, with its hint).
    """
    if not 0 < max_results <= MAX_SEARCH_RESULTS:  # the metadata store says why not
        raise Unanswered(f"max_results {max_results!r}")
    with read_only(sqlite_path(store_uri)) as db:
        where, args = _where(db, experiments, include_deleted)
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id"
            f"{where} ORDER BY r.start_time DESC, r.id ASC LIMIT ?",
            (*args, max_results),
        ).fetchall()
        ids = [str(row[0]) for row in rows]
        params = _keyed(db, "params", ids)
        metrics = _keyed(db, "latest_metrics", ids)
        tags = _keyed(db, "tags", ids)
    return [_run(row, params, metrics, tags) for row in rows]


def _where(
    db: sqlite3.Connection, experiments: Sequence[str] | None, include_deleted: bool
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if experiments is not None:
        ids = []
        for name in experiments:
            found = db.execute(
                "SELECT id FROM experiments WHERE name = ? OR id = ? LIMIT 1", (name, name)
            ).fetchone()
            if found is None:
                raise Unanswered(f"no experiment {name!r}")
            ids.append(found[0])
        clauses.append(f"r.experiment_id IN ({', '.join('?' * len(ids))})")
        args += ids
    if not include_deleted:
        clauses.append("r.deleted_at IS NULL")
    return ("" if not clauses else " WHERE " + " AND ".join(clauses)), args


def _keyed(db: sqlite3.Connection, table: str, ids: list[str]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks})"
        for run_id, key, value in db.execute(query, chunk):
            found.setdefault(str(run_id), {})[str(key)] = value
    return found


def _run(
    row: tuple[object, ...],
    params: dict[str, dict[str, object]],
    metrics: dict[str, dict[str, object]],
    tags: dict[str, dict[str, object]],
) -> Run:
    (id_, experiment_id, experiment, name, status, start, end, parent) = row[:8]
    (user, source, error, commit, branch, dirty, patch, python, packages, deleted) = row[8:]
    run_id = str(id_)
    return Run(
        id=run_id,
        experiment_id=str(experiment_id),
        experiment=str(experiment),
        name=str(name),
        status=RunStatus(str(status)),
        start_time=ms_to_datetime(as_int(start)),
        end_time=None if end is None else ms_to_datetime(as_int(end)),
        parent_id=as_text(parent),
        user=str(user),
        source=redact_command(str(source)),
        error=None if error is None else redact_text(str(error)),
        code=CodeVersion(as_text(commit), as_text(branch), _flag(dirty), as_text(patch)),
        python_version=as_text(python),
        packages_hash=as_text(packages),
        deleted=deleted is not None,
        params={k: str(v) for k, v in sorted(params.get(run_id, {}).items())},
        metrics={k: _metric(v) for k, v in sorted(metrics.get(run_id, {}).items())},
        tags={k: str(v) for k, v in sorted(tags.get(run_id, {}).items())},
    )


def _metric(value: object) -> float:
    if value is not None and not isinstance(value, int | float):
        raise Unanswered(f"unexpected metric value {value!r}")
    return stored_float(None if value is None else float(value))


def _flag(value: object) -> bool | None:
    if value is None:
        return None
    if value not in (0, 1):
        raise Unanswered(f"unexpected boolean column {value!r}")
    return bool(value)
