"""Changing registry objects: aliases, status, descriptions and tags. Each change is
one transaction with its audit event; the actor defaults to the current user."""

from __future__ import annotations

from datetime import datetime

from loopline.config import current_user
from loopline.errors import InvalidInput
from loopline.project import Stores, stores
from loopline.registry import rules
from loopline.registry.refs import ModelRef, resolve
from loopline.store import (
    AuditChainReport,
    AuditEvent,
    AuditPage,
    ModelStatus,
    ModelVersion,
    RegisteredModel,
    model_status,
)


def set_alias(
    ref: str | ModelRef | ModelVersion,
    alias: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    opened: Stores | None = None,
) -> ModelVersion:
    """Point `alias` (e.g. "champion") at the version `ref` names; atomic and audited."""
    version = resolve(ref, opened=opened)
    rules.move_alias(
        (opened or stores()).metadata.models,
        version.model,
        alias,
        version.version,
        actor=actor or current_user(),
        reason=reason,
    )
    return version


def delete_alias(
    name: str, alias: str, *, reason: str | None = None, actor: str | None = None
) -> int:
    """Remove `name@alias`; returns the version it pointed at."""
    return rules.remove_alias(
        stores().metadata.models, name, alias, actor=actor or current_user(), reason=reason
    )


def set_status(
    ref: str | ModelRef | ModelVersion,
    status: ModelStatus | str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    opened: Stores | None = None,
) -> ModelVersion:
    """Move a version's status forward (candidate -> staging -> production -> archived)."""
    version = resolve(ref, opened=opened)
    _before, updated = rules.change_status(
        (opened or stores()).metadata.models,
        version.model,
        version.version,
        model_status(status),
        actor=actor or current_user(),
        reason=reason,
    )
    return updated


def archive(
    ref: str | ModelRef | ModelVersion, *, reason: str | None = None, actor: str | None = None
) -> ModelVersion:
    """Archive a version: it can no longer be promoted or named by an alias."""
    version = resolve(ref)
    for alias in stores().metadata.models.aliases_of(version.id):
        delete_alias(version.model, alias, reason=f"archiving {version.ref}", actor=actor)
    return set_status(version, ModelStatus.ARCHIVED, reason=reason, actor=actor)


def describe(
    ref: str | ModelRef | ModelVersion,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str | None = None,
) -> ModelVersion:
    """Set a version's description and/or merge tags into its tags."""
    _check_tags(tags)
    version = resolve(ref)
    return stores().metadata.models.update_version(
        version.model,
        version.version,
        actor=actor or current_user(),
        description=description,
        tags=tags,
    )


def describe_model(
    name: str,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str | None = None,
) -> RegisteredModel:
    """Set a registered model's description and/or merge tags into its tags."""
    _check_tags(tags)
    return stores().metadata.models.update_model(
        name, actor=actor or current_user(), description=description, tags=tags
    )


def audit_log(
    *,
    object_id: str | None = None,
    model: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Audit events, newest first; `model="churn"` selects the model, its versions and
    aliases."""
    return stores().metadata.audit.list_events(
        object_id=object_id,
        object_prefix=model,
        action=action,
        actor=actor,
        since=since,
        limit=limit,
    )


def audit_page(
    *,
    actor: str | None = None,
    action: str | None = None,
    object_prefix: str | None = None,
    object_type: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> AuditPage:
    """One page of the audit log, newest first, and how many events match: by the user
    who acted, the action, the object (`churn`: the model or deployment churn and what
    is under it: churn/3, churn@champion) and its type (the web UI's audit table)."""
    return stores().metadata.audit.events_page(
        actor=actor,
        action=action,
        object_prefix=object_prefix,
        object_type=object_type,
        offset=offset,
        limit=limit,
    )


def verify_audit_log(*, expect_head: str | None = None, max_problems: int = 20) -> AuditChainReport:
    """Walk the audit log's hash chain and report whether any event was edited, deleted,
    reordered or forged (the report's `problems`, the first `max_problems` of them).

    `expect_head` is a head hash printed by an earlier verify and kept outside the
    database: without it, someone able to rewrite the database could rewrite the whole
    chain after an edit and go unnoticed (loopline.store._audit_verify says more).
    """
    return stores().metadata.audit.verify(expect_head=expect_head, max_problems=max_problems)


def _check_tags(tags: object) -> None:
    if tags is None:
        return
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k for k, v in tags.items()
    ):
        raise InvalidInput(f"tags must map non-empty strings to strings, got {tags!r}")
