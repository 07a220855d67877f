"""`loopline gc`: purge deleted runs, then free what nothing references any more.

As `mlflow gc`: the runs deleted with `runs delete` (those deleted longer ago than
`older_than`; by default all of them) are purged from the metadata store. Then the
artifact store frees every blob that no remaining run, dataset version, model version,
evaluation, card or prediction-log file references, nor any manifest among them lists,
and that was stored (or reused) more than `grace` ago: the grace period is what makes
it safe to run beside writers (see loopline/store/_sweep.py). Packs left mostly garbage
are rewritten with their live blobs only.

The artifact store must belong to this project's metadata store alone: blobs that
another project's database references would be freed. A data remote (`data push`) is
a store of its own and is not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loopline.errors import InvalidInput
from loopline.maintenance._live import live_set, local_stores, require_readable
from loopline.project import Stores
from loopline.store.purge import plan_purge, purge

DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class GcReport:
    """What `gc` did (or, with `dry_run`, would do)."""

    dry_run: bool
    runs_purged: int
    runs_kept: dict[str, str] = field(default_factory=dict)  # deleted run id -> why kept
    blobs_freed: int = 0
    packs_removed: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_freed: int = 0
    leftovers_removed: int = 0
    kept_recent: int = 0  # unreferenced, but stored within the grace period
    kept_recent_bytes: int = 0
    live_blobs: int = 0


def gc(
    *,
    older_than: timedelta = timedelta(0),
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    stores: Stores | None = None,
    progress: Callable[[int], None] | None = None,
) -> GcReport:
    """Purge runs deleted more than `older_than` ago, then free unreferenced artifacts.

    `grace` must exceed the longest time any writer takes between storing a blob and
    committing the record that references it. `dry_run` reports and changes nothing.
    `progress` is called with the bytes copied while packs are rewritten.

    Raises:
        InvalidInput: a negative `older_than` or `grace`; a project that works through a
            platform server (gc runs where the server's stores are).
        CorruptedData: a manifest cannot be read, so what it lists is unknown; nothing
            is purged or freed (run `loopline fsck`).
    """
    for name, value in (("older_than", older_than), ("grace", grace)):
        if not isinstance(value, timedelta) or value < timedelta(0):
            raise InvalidInput(f"{name} must be a duration of at least 0, got {value!r}")
    opened = local_stores("gc", stores)
    require_readable(live_set(opened))  # before purging: stop before changing anything
    plan = plan_purge(opened.metadata, datetime.now(UTC) - older_than)
    purged = len(plan.runs) if dry_run else purge(opened.metadata, plan)
    without = frozenset(plan.runs)
    swept = opened.artifacts.collect_garbage(
        lambda: require_readable(live_set(opened, without_runs=without)).digests,
        grace=grace.total_seconds(),
        dry_run=dry_run,
        progress=progress,
    )
    return GcReport(
        dry_run=dry_run,
        runs_purged=purged,
        runs_kept=plan.kept,
        blobs_freed=swept.blobs_freed,
        packs_removed=swept.packs_removed,
        packs_repacked=swept.packs_repacked,
        packs_written=swept.packs_written,
        bytes_freed=swept.bytes_freed,
        leftovers_removed=swept.leftovers_removed,
        kept_recent=swept.kept_recent,
        kept_recent_bytes=swept.kept_recent_bytes,
        live_blobs=swept.live_blobs,
    )
