"""Writing a run's params, tags and links inside a transaction the caller holds.

Shared by `MetadataStore.create_run`, which writes a new run with its params, tags and
system artifacts in one transaction (a write transaction is the unit a store pays for:
a lock and a commit), and by the `log_params`/`set_tags`/`add_links` calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from loopline.errors import Conflict, InvalidInput
from loopline.store._names import check_key, param_text, tag_text
from loopline.store._rows import chunks
from loopline.store._schema import params, run_links, tags
from loopline.store.records import CodeVersion, Direction, LinkKind, Run, RunStatus, ms_to_datetime

Link = tuple[str, str, int | None]  # (name, ref, size)


def param_values(values: Mapping[str, object]) -> dict[str, str]:
    """Checked keys and their stored text; raises InvalidInput before any write."""
    return {check_key("param", k): param_text(k, v) for k, v in values.items()}


def tag_values(values: Mapping[str, object]) -> dict[str, str]:
    return {check_key("tag", k): tag_text(k, v) for k, v in values.items()}


def insert_params(conn: Connection, run_id: str, wanted: Mapping[str, str]) -> None:
    """Record params; a key already logged with another value raises Conflict."""
    query = select(params.c.key, params.c.value).where(
        params.c.run_id == run_id, params.c.key.in_(list(wanted))
    )
    stored = dict(list(conn.execute(query)))
    for key, value in stored.items():
        if wanted[key] != value:
            raise Conflict(
                f"param {key!r} of run {run_id} is already {value!r}; "
                f"cannot change it to {wanted[key]!r}",
                hint="params are immutable; log a new run, or use a tag or metric",
            )
    new = [{"run_id": run_id, "key": k, "value": v} for k, v in wanted.items() if k not in stored]
    if new:
        conn.execute(params.insert(), new)


def replace_tags(conn: Connection, run_id: str, wanted: Mapping[str, str]) -> None:
    conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key.in_(list(wanted))))
    conn.execute(
        tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in wanted.items()]
    )


def replace_links(
    conn: Connection, run_id: str, direction: Direction, kind: LinkKind, entries: Iterable[Link]
) -> None:
    """Record (name, ref, size) links; a name already linked is re-pointed."""
    entries = list(entries)
    direction_value, kind_value = Direction(direction).value, LinkKind(kind).value
    moment = datetime.now(UTC)
    for chunk in chunks([name for name, _, _ in entries]):
        conn.execute(
            run_links.delete().where(
                run_links.c.run_id == run_id,
                run_links.c.direction == direction_value,
                run_links.c.kind == kind_value,
                run_links.c.name.in_(chunk),
            )
        )
    rows = [
        {
            "run_id": run_id,
            "direction": direction_value,
            "kind": kind_value,
            "name": name,
            "ref": ref,
            "size": size,
            "created_at": moment,
        }
        for name, ref, size in entries
    ]
    conn.execute(run_links.insert(), rows)


def new_run(
    values: Mapping[str, Any], experiment: str, params: Mapping[str, str], tags: Mapping[str, str]
) -> Run:
    """The Run just inserted with `values` (a `runs` row), as `get_run` would read it."""
    return Run(
        id=values["id"],
        experiment_id=values["experiment_id"],
        experiment=experiment,
        name=values["name"],
        status=RunStatus(values["status"]),
        start_time=ms_to_datetime(values["start_time"]),
        end_time=None,
        parent_id=values["parent_id"],
        user=values["user"],
        source=values["source"],
        code=CodeVersion(
            values["git_commit"],
            values["git_branch"],
            values["git_dirty"],
            values["git_patch_hash"],
        ),
        python_version=values["python_version"],
        packages_hash=values["packages_hash"],
        params=dict(sorted(params.items())),
        tags=dict(sorted(tags.items())),
    )


def run_status(status: RunStatus | str) -> RunStatus:
    """`status` (any case) as a RunStatus; InvalidInput naming the statuses."""
    try:
        return RunStatus(str(status).upper())
    except ValueError:
        names = ", ".join(s.value for s in RunStatus)
        raise InvalidInput(f"unknown run status {status!r}; expected one of {names}") from None
