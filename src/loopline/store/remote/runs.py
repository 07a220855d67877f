"""The runs store over HTTP: `RemoteRunStore` answers as `store.runs.RunStore` does, by
calling the platform server's /experiments, /runs and /metrics routes.

Arguments are checked here with the store's own rules (ids, keys, param and tag text)
before anything is sent, so a bad one raises the error the local store raises without a
round trip; the server checks them again. Each method is one request.

What is retried when the connection drops (see `RemoteSession.call`): reads, writes a
repeat leaves unchanged (get-or-create an experiment, the same params or tags again,
links re-pointed to the same refs), and metric batches with an id (the server applies
each id once; the tracking buffer gives every batch one). Creating a run, ending,
updating or deleting it, deleting a tag and appending points without a batch id are not:
a repeat would make a second run or a second copy of the points, so their error says
the call may or may not have been applied. Importing runs (`import_run`,
`imported_runs`) is not offered over HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loopline.errors import InvalidInput, NotFound
from loopline.store._names import (
    check_experiment_name,
    check_id,
    check_key,
    check_run_prefix,
    param_text,
    tag_text,
)
from loopline.store.records import (
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
)
from loopline.store.remote._codec import decode, encode
from loopline.store.remote._metric_wire import MAX_POINTS, batch_body, read_history, read_series

if TYPE_CHECKING:
    from loopline.store._imported_runs import ImportedRun
    from loopline.store._metrics import Point
    from loopline.store.query import Condition, OrderBy
    from loopline.store.remote._session import RemoteSession

Link = tuple[str, str, int | None]  # (name, ref, size)
ALL = MetricSpan()


class RemoteRunStore:
    """Experiments, runs and everything logged to them, through a platform server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    # -- experiments ------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment called `name`, created on first use (safe under concurrency)."""
        check_experiment_name(name)
        answer = self._session.call("POST", "/experiments", body={"name": name}, idempotent=True)
        found: Experiment = decode(Experiment, answer)
        return found

    def get_experiment(self, name_or_id: str) -> Experiment:
        if not _may_name_experiment(name_or_id):  # no stored experiment can have it
            raise NotFound(
                f"no experiment named {name_or_id!r}", hint="`loopline experiments ls` lists them"
            )
        answer = self._session.call("GET", f"/experiments/{quote(name_or_id, safe='')}")
        found: Experiment = decode(Experiment, answer)
        return found

    def list_experiments(self) -> list[Experiment]:
        """Every experiment with its number of (non-deleted) runs, newest first."""
        found: list[Experiment] = decode(
            list[Experiment], self._session.call("GET", "/experiments")
        )
        return found

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
        artifacts: Iterable[Link] = (),
    ) -> Run:
        """A new RUNNING run, with its params, tags and output artifact links (one write
        on the server). `user` is kept only by a server without authentication."""
        if parent_id is not None:
            check_id("run", parent_id)
        body = {
            "experiment_id": experiment_id,
            "name": name,
            "parent_id": parent_id,
            "user": user,
            "source": source,
            "code": encode(code or CodeVersion()),
            "python_version": python_version,
            "packages_hash": packages_hash,
            "params": _param_values(params or {}),
            "tags": _tag_values(tags or {}),
            "artifacts": [list(link) for link in artifacts],
        }
        created: Run = decode(Run, self._session.call("POST", "/runs", body=body))
        return created

    def end_run(self, run_id: str, status: RunStatus | str, *, error: str | None = None) -> Run:
        """Set a run's final status (FINISHED, FAILED or KILLED) and end time."""
        answer = self._session.call(
            "PATCH", _run_path(run_id), body={"status": str(status), "error": error}
        )
        ended: Run = decode(Run, answer)
        return ended

    def mark_run_ended(
        self, run_id: str, status: RunStatus | str, *, error: str | None = None
    ) -> None:
        """`end_run` without reading the run back (the server answers 204)."""
        self._session.call(
            "PATCH",
            _run_path(run_id),
            params={"answer": "none"},
            body={"status": str(status), "error": error},
        )

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
        if end_time_ms is not None and (
            isinstance(end_time_ms, bool) or not isinstance(end_time_ms, int)
        ):
            raise InvalidInput(f"end_time must be epoch milliseconds, got {end_time_ms!r}")
        fields = {
            "status": None if status is None else str(status),
            "end_time_ms": end_time_ms,
            "name": name,
        }
        answer = self._session.call("PATCH", _run_path(run_id), body={"update": fields})
        updated: Run = decode(Run, answer)
        return updated

    def set_deleted(self, run_id: str, deleted: bool) -> None:
        """Soft-delete (or restore) a run: search skips deleted runs unless asked."""
        self._session.call(
            "PATCH", _run_path(run_id), params={"answer": "none"}, body={"deleted": deleted}
        )

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """A full run id from a unique prefix of at least 4 hex chars (as git does)."""
        text = check_run_prefix(id_or_prefix)
        if len(text) == 32:  # as the store: a full id is returned unchecked
            return text
        answer = self._session.call("GET", f"/runs/resolve/{text}")
        return check_id("run", answer.get("id") if isinstance(answer, dict) else None)

    def get_run(self, run_id: str) -> Run:
        found: Run = decode(Run, self._session.call("GET", _run_path(run_id)))
        return found

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs with params, latest metrics and tags, in the order of `run_ids`."""
        if not run_ids:
            return []
        answer = self._session.call(
            "POST", "/runs/lookup", body={"ids": list(run_ids)}, idempotent=True
        )
        found: list[Run] = decode(list[Run], answer)
        return found

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        condition: Condition | None = None,
        order_by: tuple[OrderBy, ...] = (),
        max_results: int | None = 1000,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching `condition`, sorted, at most `max_results` (None: every match)."""
        body = {
            "experiment_ids": None if experiment_ids is None else list(experiment_ids),
            "condition": encode(condition),
            "order_by": encode(tuple(order_by)),
            "max_results": max_results,
            "include_deleted": include_deleted,
        }
        answer = self._session.call("POST", "/runs/search", body=body, idempotent=True)
        found: list[Run] = decode(list[Run], answer)
        return found

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
        """`limit` matching runs from position `offset`, and how many match in all."""
        body = {
            "experiment_ids": None if experiment_ids is None else list(experiment_ids),
            "condition": encode(condition),
            "order_by": encode(tuple(order_by)),
            "offset": offset,
            "limit": limit,
            "include_deleted": include_deleted,
        }
        answer = self._session.call("POST", "/runs/search-page", body=body, idempotent=True)
        found: RunsPage = decode(RunsPage, answer)
        return found

    def run_keys(self, experiment_id: str, *, newest: int | None = None) -> RunKeys:
        """The param, metric and tag keys the experiment's (non-deleted) runs hold; of its
        `newest` runs only when given."""
        path = f"/experiments/{check_id('experiment', experiment_id)}/run-keys"
        query = {} if newest is None else {"newest": newest}
        found: RunKeys = decode(RunKeys, self._session.call("GET", path, params=query))
        return found

    # -- params, tags, metrics ---------------------------------------------------------

    def log_params(self, run_id: str, values: Mapping[str, object]) -> None:
        """Record params; a key already logged with another value raises Conflict."""
        wanted = _param_values(values)
        if wanted:
            self._session.call(
                "POST", f"{_run_path(run_id)}/params", body={"params": wanted}, idempotent=True
            )

    def set_tags(self, run_id: str, values: Mapping[str, object]) -> None:
        """Set tags (mutable: a new value replaces the old)."""
        wanted = _tag_values(values)
        if wanted:
            self._session.call(
                "POST", f"{_run_path(run_id)}/tags", body={"tags": wanted}, idempotent=True
            )

    def delete_tag(self, run_id: str, key: str) -> None:
        # not repeated: a repeat of a delete that was applied would answer NotFound
        self._session.call(
            "DELETE", f"{_run_path(run_id)}/tags", params={"key": key}, idempotent=False
        )

    def log_metric_points(self, points: Sequence[Point], batch_id: str | None = None) -> None:
        """Append metric points `(run_id, key, value, step, timestamp_ms)`: one request
        (of columns, see `_metric_wire`) per 200,000 points. With a `batch_id` the server
        applies the batch once, so a dropped connection is retried (each request of a
        larger batch gets an id derived from it)."""
        if batch_id is not None:
            check_id("metric batch", batch_id)
        for part, start in enumerate(range(0, len(points), MAX_POINTS)):
            body = batch_body(points[start : start + MAX_POINTS], _part_id(batch_id, part))
            self._session.call("POST", "/metrics", body=body, idempotent=batch_id is not None)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        path = f"{_run_path(run_id)}/metrics/history"
        return read_history(self._session.call("GET", path, params={"key": key}))

    def get_metric_series(self, run_id: str, key: str, span: MetricSpan = ALL) -> MetricSeries:
        """The points of `key` within `span`, as columns (the history route, ranged)."""
        query: dict[str, str | int] = {"key": key, "x": span.x}
        for name in ("start", "end", "limit", "buckets"):
            if getattr(span, name) is not None:
                query[name] = getattr(span, name)
        path = f"{_run_path(run_id)}/metrics/history"
        return read_series(self._session.call("GET", path, params=query))

    def list_metric_keys(self, run_id: str) -> list[str]:
        keys: list[str] = decode(
            list[str], self._session.call("GET", f"{_run_path(run_id)}/metrics")
        )
        return keys

    # -- imports (not over HTTP) --------------------------------------------------------

    def import_run(self, experiment_id: str, run: ImportedRun) -> str:
        """Not through a server: an imported run's whole history is written in one
        transaction of the server's own database."""
        raise _not_remote()

    def imported_runs(self, key_tag: str, marker: str) -> dict[str, tuple[str, str]]:
        raise _not_remote()

    # -- lineage links -----------------------------------------------------------------

    def add_links(
        self,
        run_id: str,
        direction: Direction,
        kind: LinkKind,
        items: Iterable[Link],
    ) -> None:
        """Record (name, ref, size) links; a name already linked is re-pointed."""
        entries = [list(item) for item in items]
        if not entries:
            return
        body = {"direction": Direction(direction).value, "kind": LinkKind(kind).value}
        self._session.call(
            "POST", f"{_run_path(run_id)}/links", body={**body, "items": entries}, idempotent=True
        )

    def list_links(
        self,
        run_id: str,
        direction: Direction | None = None,
        kind: LinkKind | None = None,
    ) -> list[RunLink]:
        params: dict[str, Any] = {}
        if direction is not None:
            params["direction"] = Direction(direction).value
        if kind is not None:
            params["kind"] = LinkKind(kind).value
        answer = self._session.call("GET", f"{_run_path(run_id)}/links", params=params)
        links: list[RunLink] = decode(list[RunLink], answer)
        return links


def _part_id(batch_id: str | None, part: int) -> str | None:
    """The id of request `part` of a batch: the batch's own for the first, and for the
    rest a hash of it and the part's number (the same on every retry)."""
    if batch_id is None or part == 0:
        return batch_id
    return hashlib.blake2b(f"{batch_id}/{part}".encode(), digest_size=16).hexdigest()


def _not_remote() -> InvalidInput:
    return InvalidInput(
        "importing into a project that works through a server is not supported yet",
        hint="run the import where the server's own project is (its database)",
    )


def _run_path(run_id: str) -> str:
    return f"/runs/{check_id('run', run_id)}"


def _param_values(values: Mapping[str, object]) -> dict[str, str]:
    """The text the store keeps (checked and redacted here, as the store would)."""
    if not isinstance(values, Mapping):
        raise InvalidInput(f"params must be a mapping of name -> value, got {values!r}")
    return {check_key("param", k): param_text(k, v) for k, v in values.items()}


def _tag_values(values: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"tags must be a mapping of name -> value, got {values!r}")
    return {check_key("tag", k): tag_text(k, v) for k, v in values.items()}


def _may_name_experiment(name_or_id: object) -> bool:
    """Whether a stored experiment could be called (or have the id) `name_or_id`."""
    try:
        check_experiment_name(name_or_id)
    except InvalidInput:
        try:
            check_id("experiment", name_or_id)
        except InvalidInput:
            return False
    return True
