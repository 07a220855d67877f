"""The runs store: experiments, runs, params, tags, metric points and run links in SQL.

One implementation serves SQLite and PostgreSQL (SQLAlchemy Core); the same
conformance checks (loopline.testing) run against both. Reached as `MetadataStore.runs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select, update

from loopline.errors import Conflict, InvalidInput, LooplineError, NotFound
from loopline.redact import redact_command, redact_text
from loopline.store import _imported_runs, _metrics, _run_values
from loopline.store._db import Database
from loopline.store._names import (
    check_experiment_name,
    check_id,
    check_run_name,
    check_run_prefix,
    friendly_run_name,
)
from loopline.store._rows import RunDetails, chunks, experiment_record
from loopline.store._schema import experiments, run_links, runs, tags
from loopline.store._search import (
    apply_order,
    check_count,
    counted,
    keys_of_runs,
    matching_runs,
)
from loopline.store.query import Condition, OrderBy
from loopline.store.records import (
    MAX_SEARCH_RESULTS,
    CodeVersion,
    Direction,
    Experiment,
    LinkKind,
    MetricPoint,
    MetricSeries,
    MetricSpan,
    Run,
    RunKeys,
    RunLink,
    RunsPage,
    RunStatus,
    ms_to_datetime,
    new_id,
)

log = logging.getLogger(__name__)
ALL = MetricSpan()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RunStore:
    """Experiments, runs and everything logged to them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._next_prune = 0.0  # monotonic time of the next pruning of old batch ids

    # -- experiments ------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment called `name`, created on first use (safe under concurrency)."""
        check_experiment_name(name)
        found = self._find_experiment(name)
        if found is not None:
            return found
        try:
            with self._db.write("create experiment") as conn:
                conn.execute(
                    experiments.insert().values(
                        id=new_id(), name=name, created_at=datetime.now(UTC)
                    )
                )
        except Conflict:
            pass  # another process created it between our read and our write
        found = self._find_experiment(name)
        assert found is not None
        return found

    def get_experiment(self, name_or_id: str) -> Experiment:
        found = self._find_experiment(name_or_id)
        if found is None:
            raise NotFound(
                f"no experiment named {name_or_id!r}", hint="`loopline experiments ls` lists them"
            )
        return found

    def list_experiments(self) -> list[Experiment]:
        """Every experiment with its number of (non-deleted) runs and the start of the
        newest, newest experiment first."""
        counts = (
            select(
                runs.c.experiment_id,
                func.count().label("n"),
                func.max(runs.c.start_time).label("last"),
            )
            .where(runs.c.deleted_at.is_(None))
            .group_by(runs.c.experiment_id)
            .subquery()
        )
        stmt = (
            select(experiments, counts.c.n, counts.c.last)
            .outerjoin(counts, counts.c.experiment_id == experiments.c.id)
            .order_by(experiments.c.created_at.desc())
        )
        with self._db.read() as conn:
            return [
                experiment_record(
                    row,
                    run_count=row.n or 0,
                    last_run_at=None if row.last is None else ms_to_datetime(row.last),
                )
                for row in conn.execute(stmt)
            ]

    def _find_experiment(self, name_or_id: str) -> Experiment | None:
        stmt = select(experiments).where(
            (experiments.c.name == name_or_id) | (experiments.c.id == name_or_id)
        )
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else experiment_record(row)

    # -- runs ---------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        user: str = "",
        source: str = "",
        code: CodeVersion | None = None,
        python_version: str | None = None,
        packages_hash: str | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
        artifacts: Iterable[_run_values.Link] = (),
    ) -> Run:
        """A new RUNNING run; `parent_id` nests it under another run.

        `params`, `tags` and output `artifacts` links given here are written in the
        run's own transaction: the run appears with them or not at all.
        """
        run_id = new_id()
        if parent_id is not None:
            self.get_run(check_id("run", parent_id))
        wanted_params = _run_values.param_values(params or {})
        wanted_tags = _run_values.tag_values(tags or {})
        links = list(artifacts)
        code = code or CodeVersion()
        run_name = check_run_name(name) if name is not None else friendly_run_name(run_id)
        start = now_ms()
        source = redact_command(source)  # callers redact too; this is the last gate
        values = {
            "id": run_id,
            "experiment_id": experiment_id,
            "name": run_name,
            "status": RunStatus.RUNNING.value,
            "start_time": start,
            "parent_id": parent_id,
            "user": user,
            "source": source,
            "git_commit": code.commit,
            "git_branch": code.branch,
            "git_dirty": code.dirty,
            "git_patch_hash": code.patch_hash,
            "python_version": python_version,
            "packages_hash": packages_hash,
        }
        with self._db.write("create run") as conn:
            experiment = conn.execute(
                select(experiments.c.name).where(experiments.c.id == experiment_id)
            ).first()
            if experiment is None:
                raise NotFound(f"no experiment with id {experiment_id!r}")
            conn.execute(runs.insert().values(**values))
            if wanted_params:
                _run_values.insert_params(conn, run_id, wanted_params)
            if wanted_tags:
                _run_values.replace_tags(conn, run_id, wanted_tags)
            if links:
                _run_values.replace_links(conn, run_id, Direction.OUTPUT, LinkKind.ARTIFACT, links)
        # Built from what was written rather than read back: four queries fewer a run.
        return _run_values.new_run(values, experiment.name, wanted_params, wanted_tags)

    def end_run(self, run_id: str, status: RunStatus | str, *, error: str | None = None) -> Run:
        """Set a run's final status (FINISHED, FAILED or KILLED) and end time."""
        self.mark_run_ended(run_id, status, error=error)
        return self.get_run(run_id)

    def mark_run_ended(
        self, run_id: str, status: RunStatus | str, *, error: str | None = None
    ) -> None:
        """`end_run` without reading the run back (a `with ll.start_run()` block's end)."""
        final = _run_values.run_status(status)
        if final is RunStatus.RUNNING:
            raise InvalidInput("a run cannot be ended with status RUNNING")
        with self._db.write("end run") as conn:
            result = conn.execute(
                update(runs)
                .where(runs.c.id == check_id("run", run_id))
                .values(
                    status=final.value,
                    end_time=now_ms(),
                    error=None if error is None else redact_text(error),
                )
            )
            if result.rowcount == 0:
                raise _no_run(run_id)

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | str | None = None,
        end_time_ms: int | None = None,
        name: str | None = None,
    ) -> Run:
        """Change a run's status, end time or name (the MLflow API's update-run).

        A final status without `end_time_ms` ends the run now; RUNNING clears the end time
        (a run resumed). Fields left None keep their value.
        """
        values: dict[str, object] = {}
        if name is not None:
            values["name"] = check_run_name(name)
        if status is not None:
            values["status"] = _run_values.run_status(status).value
            running = values["status"] == RunStatus.RUNNING.value
            values["end_time"] = None if running else (end_time_ms or now_ms())
        if end_time_ms is not None:
            if isinstance(end_time_ms, bool) or not isinstance(end_time_ms, int):
                raise InvalidInput(f"end_time must be epoch milliseconds, got {end_time_ms!r}")
            values["end_time"] = end_time_ms
        with self._db.write("update run") as conn:
            if values:
                result = conn.execute(
                    update(runs).where(runs.c.id == check_id("run", run_id)).values(**values)
                )
                if result.rowcount == 0:
                    raise _no_run(run_id)
            else:
                self._require_run(conn, check_id("run", run_id))
        return self.get_run(run_id)

    def set_deleted(self, run_id: str, deleted: bool) -> None:
        """Soft-delete (or restore) a run: search skips deleted runs unless asked."""
        moment = datetime.now(UTC) if deleted else None
        with self._db.write("delete run") as conn:
            result = conn.execute(
                update(runs).where(runs.c.id == check_id("run", run_id)).values(deleted_at=moment)
            )
            if result.rowcount == 0:
                raise _no_run(run_id)

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """A full run id from a unique prefix of at least 4 hex chars (as git does)."""
        text = check_run_prefix(id_or_prefix)
        if len(text) == 32:
            return text
        stmt = select(runs.c.id).where(runs.c.id.like(text + "%")).limit(2)
        with self._db.read() as conn:
            found = [row.id for row in conn.execute(stmt)]
        if not found:
            raise _no_run(id_or_prefix)
        if len(found) > 1:
            raise Conflict(f"run id prefix {id_or_prefix!r} is ambiguous; give more characters")
        return str(found[0])

    def get_run(self, run_id: str) -> Run:
        runs_found = self.get_runs([check_id("run", run_id)])
        if not runs_found:
            raise _no_run(run_id)
        return runs_found[0]

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs with params, latest metrics and tags, in the order of `run_ids`."""
        with self._db.read() as conn:
            rows = {}
            for chunk in chunks(run_ids):
                stmt = (
                    select(runs, experiments.c.name.label("experiment_name"))
                    .join(experiments, experiments.c.id == runs.c.experiment_id)
                    .where(runs.c.id.in_(chunk))
                )
                rows.update({row.id: row for row in conn.execute(stmt)})
            details = RunDetails.load(conn, list(rows))
        return [details.run(rows[run_id]) for run_id in run_ids if run_id in rows]

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        condition: Condition | None = None,
        order_by: tuple[OrderBy, ...] = (),
        max_results: int | None = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching `condition`, sorted, at most `max_results` (None: every match).

        Only the latest value of each metric is consulted (one indexed row per run and
        key), and params/metrics/tags are loaded for the returned runs alone.
        """
        if max_results is not None and (
            not isinstance(max_results, int) or not 0 < max_results <= MAX_SEARCH_RESULTS
        ):
            raise InvalidInput(f"max_results must be 1..{MAX_SEARCH_RESULTS}, got {max_results!r}")
        stmt = matching_runs(experiment_ids, condition, include_deleted)
        stmt = apply_order(stmt, order_by).limit(max_results)
        with self._db.read() as conn:
            ids = [row.id for row in conn.execute(stmt)]
        return self.get_runs(ids)

    def search_runs_page(
        self,
        experiment_ids: Sequence[str] | None = None,
        condition: Condition | None = None,
        order_by: tuple[OrderBy, ...] = (),
        *,
        offset: int = 0,
        limit: int = 50,
        include_deleted: bool = False,
    ) -> RunsPage:
        """`limit` matching runs from position `offset` in `order_by`'s order, and how
        many match in all (one snapshot): a table's page, sorted and counted by the
        database, so a page of an experiment of 30,000 runs loads 50 of them."""
        check_count("offset", offset, 0, None)
        check_count("limit", limit, 1, MAX_SEARCH_RESULTS)
        matching = matching_runs(experiment_ids, condition, include_deleted)
        with self._db.read() as conn:
            if condition is None:  # an index count; the page stops after `limit` rows
                total = conn.execute(counted(matching)).scalar_one()
                paged = apply_order(matching, order_by).offset(offset).limit(limit)
                ids = [row.id for row in conn.execute(paged)] if offset < total else []
            else:  # the count rides on the page's query: the filter runs once, not twice
                window = matching.add_columns(func.count().over().label("total"))
                paged = apply_order(window, order_by).offset(offset).limit(limit)
                rows = conn.execute(paged).all()
                ids = [row.id for row in rows]
                total = rows[0].total if rows else conn.execute(counted(matching)).scalar_one()
        return RunsPage(self.get_runs(ids), int(total), offset)

    def run_keys(self, experiment_id: str, *, newest: int | None = None) -> RunKeys:
        """The param, metric and tag keys the experiment's (non-deleted) runs hold; of its
        `newest` runs only when given (1,000 runs take ~5 ms where 30,000 take ~150)."""
        if newest is not None:
            check_count("newest", newest, 1, None)
        stmts = keys_of_runs(check_id("experiment", experiment_id), newest)
        with self._db.read() as conn:
            found = {
                kind: tuple(sorted(row.key for row in conn.execute(stmt)))
                for kind, stmt in stmts.items()
            }
        return RunKeys(**found)

    # -- params, tags, metrics ---------------------------------------------------------

    def log_params(self, run_id: str, values: Mapping[str, object]) -> None:
        """Record params; a key already logged with another value raises Conflict."""
        check_id("run", run_id)
        wanted = _run_values.param_values(values)
        if not wanted:
            return
        with self._db.write("log params") as conn:
            self._require_run(conn, run_id)
            _run_values.insert_params(conn, run_id, wanted)

    def set_tags(self, run_id: str, values: Mapping[str, object]) -> None:
        """Set tags (mutable: a new value replaces the old)."""
        check_id("run", run_id)
        wanted = _run_values.tag_values(values)
        if not wanted:
            return
        with self._db.write("set tags") as conn:
            self._require_run(conn, run_id)
            _run_values.replace_tags(conn, run_id, wanted)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._db.write("delete tag") as conn:
            result = conn.execute(
                tags.delete().where(tags.c.run_id == check_id("run", run_id), tags.c.key == key)
            )
            if result.rowcount == 0:
                raise NotFound(f"run {run_id} has no tag {key!r}")

    def log_metric_points(
        self, points: Sequence[_metrics.Point], batch_id: str | None = None
    ) -> None:
        """Append metric points `(run_id, key, value, step, timestamp_ms)` in one write.

        Callers validate (the tracking buffer checks each point as it is logged); a point
        of an unknown run refuses the whole batch with NotFound naming the run. A batch
        with a `batch_id` (32 hex characters) is applied once: sent again with the same
        id, it is acknowledged and nothing is stored (see `_metrics`).
        """
        if not points:
            return
        if batch_id is not None:
            check_id("metric batch", batch_id)
        try:
            with self._db.write("log metrics") as conn:
                if batch_id is not None and not _metrics.claim_batch(conn, batch_id):
                    return  # applied before: its answer was lost, not its points
                _metrics.insert_points(conn, points)
        except Conflict:
            # the runs' foreign key refused a point (the only constraint a new point can
            # break): name the run; checked only on this path, so a write costs no read
            wanted = sorted({point[0] for point in points})
            known = {run.id for run in self.get_runs(wanted)}
            missing = [run_id for run_id in wanted if run_id not in known]
            if missing:
                raise _no_run(missing[0]) from None
            raise
        if batch_id is not None:
            self._prune_batch_ids()

    def _prune_batch_ids(self) -> None:
        """Forget old batch ids now and then, in a transaction of its own: a failure to
        prune (two processes pruning at once) must not fail a write of points."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + _metrics.PRUNE_EVERY_S
        try:
            with self._db.write("forget old metric batch ids") as conn:
                _metrics.forget_old_batches(conn)
        except LooplineError as exc:
            log.info("old metric batch ids not pruned this time: %s", exc)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        with self._db.read() as conn:
            self._require_run(conn, check_id("run", run_id))
            return _metrics.history(conn, run_id, key)

    def get_metric_series(self, run_id: str, key: str, span: MetricSpan = ALL) -> MetricSeries:
        """The points of `key` within `span` as columns (a chart's read; `_metrics.series`)."""
        with self._db.read() as conn:
            self._require_run(conn, check_id("run", run_id))
            return _metrics.series(conn, run_id, key, span)

    def list_metric_keys(self, run_id: str) -> list[str]:
        with self._db.read() as conn:
            return _metrics.keys(conn, check_id("run", run_id))

    # -- runs copied from another tool (loopline import mlflow) -----------------------

    def import_run(self, experiment_id: str, run: _imported_runs.ImportedRun) -> str:
        """Write a run copied from another store, with its own times and full metric
        history, in one transaction; an earlier import of it (found by `run.key_tag`) is
        brought up to date. Returns the run's id."""
        with self._db.write("import run") as conn:
            return _imported_runs.write_imported(conn, experiment_id, run)

    def imported_runs(self, key_tag: str, marker: str) -> dict[str, tuple[str, str]]:
        """source run id -> (run id, its `marker` tag) of the runs tagged `key_tag`."""
        with self._db.read() as conn:
            return _imported_runs.find_imported(conn, key_tag, marker)

    # -- lineage links (artifacts now; datasets, models, features later) ----------------

    def add_links(
        self,
        run_id: str,
        direction: Direction,
        kind: LinkKind,
        items: Iterable[_run_values.Link],
    ) -> None:
        """Record (name, ref, size) links; a name already linked is re-pointed."""
        check_id("run", run_id)
        entries = list(items)
        if not entries:
            return
        with self._db.write("link") as conn:
            self._require_run(conn, run_id)
            _run_values.replace_links(conn, run_id, direction, kind, entries)

    def list_links(
        self,
        run_id: str,
        direction: Direction | None = None,
        kind: LinkKind | None = None,
    ) -> list[RunLink]:
        stmt = select(run_links).where(run_links.c.run_id == check_id("run", run_id))
        if direction is not None:
            stmt = stmt.where(run_links.c.direction == Direction(direction).value)
        if kind is not None:
            stmt = stmt.where(run_links.c.kind == LinkKind(kind).value)
        with self._db.read() as conn:
            self._require_run(conn, run_id)
            return [
                RunLink(
                    run_id=row.run_id,
                    direction=Direction(row.direction),
                    kind=LinkKind(row.kind),
                    name=row.name,
                    ref=row.ref,
                    size=row.size,
                    created_at=row.created_at,
                )
                for row in conn.execute(stmt.order_by(run_links.c.name))
            ]

    # -- plumbing -----------------------------------------------------------------------

    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
            raise _no_run(run_id)


def _no_run(run_id: str) -> NotFound:
    return NotFound(f"no run with id {run_id!r}", hint="`loopline runs ls` lists runs")
