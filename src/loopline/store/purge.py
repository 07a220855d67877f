"""Purging runs deleted with `runs delete`: their rows go for good (as `mlflow gc`).

`runs delete` only marks a run deleted (restorable); `gc` purges the runs marked before
a given time: params, tags, metric points, links, then the run. A deleted run stays
when something that is kept still points at it: a model version trained by it (the
lineage would break), or a child run that is not purged itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from loopline.store._rows import chunks
from loopline.store._schema import (
    latest_metrics,
    metric_points,
    model_versions,
    params,
    registered_models,
    run_links,
    runs,
    tags,
)

if TYPE_CHECKING:
    from loopline.store.metadata import MetadataStore


@dataclass(frozen=True)
class PurgePlan:
    """The deleted runs to purge (children before parents), and those kept, with why."""

    runs: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


def plan_purge(metadata: MetadataStore, deleted_before: datetime) -> PurgePlan:
    """Which runs deleted at or before `deleted_before` can be purged."""
    with metadata.db.read() as conn:
        deleted = {
            row.id
            for row in conn.execute(
                select(runs.c.id).where(
                    runs.c.deleted_at.is_not(None), runs.c.deleted_at <= deleted_before
                )
            )
        }
        children: dict[str, set[str]] = {}
        for row in conn.execute(
            select(runs.c.id, runs.c.parent_id).where(runs.c.parent_id.is_not(None))
        ):
            children.setdefault(row.parent_id, set()).add(row.id)
        trained = select(
            model_versions.c.run_id, registered_models.c.name, model_versions.c.version
        )
        trained = trained.join(
            registered_models, registered_models.c.id == model_versions.c.model_id
        )
        kept = {
            row.run_id: f"model {row.name} v{row.version} was trained by it"
            for row in conn.execute(trained.where(model_versions.c.run_id.is_not(None)))
            if row.run_id in deleted
        }
    purgeable = deleted - kept.keys()
    changed = True
    while changed:  # a run with a child that stays, stays too
        changed = False
        for run_id in sorted(purgeable):
            staying = children.get(run_id, set()) - purgeable
            if staying:
                kept[run_id] = f"its child run {min(staying)} is kept"
                purgeable.discard(run_id)
                changed = True
    return PurgePlan(_children_first(purgeable, children), kept)


def purge(metadata: MetadataStore, plan: PurgePlan) -> int:
    """Delete the planned runs and everything logged to them; how many runs went."""
    purged = 0
    for chunk in chunks(plan.runs):
        with metadata.db.write("purge runs") as conn:
            # a run restored since the plan stays; the lock keeps it from happening now
            still = select(runs.c.id).where(runs.c.id.in_(chunk), runs.c.deleted_at.is_not(None))
            doomed = [row.id for row in conn.execute(still.with_for_update())]
            for table in (metric_points, latest_metrics, params, tags, run_links):
                conn.execute(table.delete().where(table.c.run_id.in_(doomed)))
            purged += conn.execute(runs.delete().where(runs.c.id.in_(doomed))).rowcount
    return purged


def _children_first(purgeable: set[str], children: dict[str, set[str]]) -> list[str]:
    """`purgeable` ordered so that each run comes after all of its children."""
    order: list[str] = []
    placed: set[str] = set()

    def place(run_id: str) -> None:
        if run_id in placed:
            return
        placed.add(run_id)
        for child in sorted(children.get(run_id, set()) & purgeable):
            place(child)
        order.append(run_id)

    for run_id in sorted(purgeable):
        place(run_id)
    return order
