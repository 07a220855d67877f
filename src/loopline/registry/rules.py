"""The registry's rules: how a version's status may move, where an alias may point, and
what each change writes to the audit log.

The store offers the transaction (`ModelStore.change`: the model's row locked, then
reads, the change and its audit event committed together); the rules run inside it, so
no other writer can slip between a check and the change it allowed, and the log and
the state never disagree. Through a platform server (a remote ModelStore) no transaction
can be held open across HTTP: the whole change goes to the server, which runs these same
rules in its own transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.errors import Conflict, NotFound
from loopline.store import ModelStatus, check_alias

if TYPE_CHECKING:
    from loopline.store import ModelStore, ModelVersion
    from loopline.store.remote.models import RemoteModelStore

# Status only moves forward; any live version may be archived; archived is final.
NEXT_STATUS = {
    ModelStatus.CANDIDATE: {ModelStatus.STAGING, ModelStatus.PRODUCTION, ModelStatus.ARCHIVED},
    ModelStatus.STAGING: {ModelStatus.PRODUCTION, ModelStatus.ARCHIVED},
    ModelStatus.PRODUCTION: {ModelStatus.ARCHIVED},
    ModelStatus.ARCHIVED: set(),
}
_STATUS_HINT = "status moves candidate -> staging -> production -> archived; archived is final"


def check_status_move(ref: str, before: ModelStatus, after: ModelStatus) -> None:
    """Conflict unless the status machine allows `before` -> `after` for version `ref`."""
    if after == before:
        raise Conflict(f"{ref} is already {after.value}")
    if after not in NEXT_STATUS[before]:
        raise Conflict(
            f"{ref} is {before.value} and cannot move to {after.value}", hint=_STATUS_HINT
        )


def check_alias_target(ref: str, status: ModelStatus) -> None:
    """Conflict when an alias may not name version `ref` (an archived version)."""
    if status == ModelStatus.ARCHIVED:
        raise Conflict(f"{ref} is archived; an alias cannot point at it")


def change_status(
    models: ModelStore,
    name: str,
    version: int,
    status: ModelStatus,
    *,
    actor: str,
    reason: str | None,
) -> tuple[ModelStatus, ModelVersion]:
    """Move a version to `status`, audited; returns (the status before, the version after)."""
    remote = _on_server(models)
    if remote is not None:
        return remote.change_status(name, version, status, actor=actor, reason=reason)
    ref = f"{name}/{version}"
    with models.change(name, "change model status") as change:
        target = change.version(version)
        check_status_move(ref, target.status, status)
        change.set_status(target, status)
        change.audit(
            actor=actor,
            action="model_version.status",
            object_type="model_version",
            object_id=ref,
            before={"status": target.status.value},
            after={"status": status.value},
            reason=reason,
        )
    return target.status, models.get_version(name, version)


def move_alias(
    models: ModelStore,
    name: str,
    alias: str,
    version: int,
    *,
    actor: str,
    reason: str | None = None,
) -> int | None:
    """Point `name@alias` at `version`, audited; returns the version it named before.

    Concurrent moves of one alias take turns (the model's row is locked), so each audit
    event records the true previous target.
    """
    check_alias(alias)
    remote = _on_server(models)
    if remote is not None:
        return remote.move_alias(name, alias, version, actor=actor, reason=reason)
    with models.change(name, "move alias") as change:
        target = change.version(version)
        check_alias_target(f"{name}/{version}", target.status)
        before = change.alias(alias)
        change.point_alias(alias, target, exists=before is not None)
        change.audit(
            actor=actor,
            action="alias.set",
            object_type="alias",
            object_id=f"{name}@{alias}",
            before=None if before is None else {"version": before},
            after={"version": version},
            reason=reason,
        )
    return before


def remove_alias(
    models: ModelStore, name: str, alias: str, *, actor: str, reason: str | None = None
) -> int:
    """Remove `name@alias`, audited; returns the version it named."""
    check_alias(alias)
    remote = _on_server(models)
    if remote is not None:
        return remote.remove_alias(name, alias, actor=actor, reason=reason)
    with models.change(name, "delete alias") as change:
        before = change.alias(alias)
        if before is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        change.remove_alias(alias)
        change.audit(
            actor=actor,
            action="alias.delete",
            object_type="alias",
            object_id=f"{name}@{alias}",
            before={"version": before},
            reason=reason,
        )
    return before


def _on_server(models: ModelStore) -> RemoteModelStore | None:
    """The remote store when `models` is one: its changes run on the server."""
    if type(models).__name__ != "RemoteModelStore":  # no import for a local store
        return None
    from loopline.store.remote.models import RemoteModelStore

    return models if isinstance(models, RemoteModelStore) else None
