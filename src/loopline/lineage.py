"""Lineage across areas: which run is active, and the links other areas add to it.

Tracking registers where the active run comes from; the data area (and later models and
features) record what a run read or wrote through `record_input` / `record_output`,
without importing tracking.
"""

from __future__ import annotations

from collections.abc import Callable

from loopline.project import stores
from loopline.store import Direction, LinkKind

_source: Callable[[], str | None] = lambda: None  # noqa: E731 - replaced by tracking


def register_active_run_source(source: Callable[[], str | None]) -> None:
    """Tell other areas how to find the active run's id (tracking calls this)."""
    global _source
    _source = source


def active_run_id() -> str | None:
    return _source()


def record_input(kind: LinkKind, name: str, ref: str, size: int | None = None) -> str | None:
    """Link `ref` as an input of the active run, if there is one; returns the run id."""
    return _record(Direction.INPUT, kind, name, ref, size)


def record_output(kind: LinkKind, name: str, ref: str, size: int | None = None) -> str | None:
    """Link `ref` as an output of the active run, if there is one; returns the run id."""
    return _record(Direction.OUTPUT, kind, name, ref, size)


def _record(
    direction: Direction, kind: LinkKind, name: str, ref: str, size: int | None
) -> str | None:
    run_id = active_run_id()
    if run_id is not None:
        stores().metadata.runs.add_links(run_id, direction, kind, [(name, ref, size)])
    return run_id
