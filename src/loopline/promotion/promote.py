"""Promotion: move a version's status (and optionally an alias) through the gates.

    promote("churn/4", to="production", alias="champion", reason="beats v3")

Gates run first; a failure refuses the promotion (PromotionRefused, with one line per
failed rule) unless `force=True` with a reason, which is audited with the failures.
A policy may require an approval before `production`: until `approve` is called the
version waits in `staging`, and approving completes the pending promotion. Every
status change regenerates the version's model card.

Nobody approves their own promotion: `approve` by the user who requested the waiting
promotion raises SelfApproval (and the attempt is audited), and an approval counts
towards a promotion only if someone other than its requester gave it. Users are compared
by actor name, the authenticated user on the platform server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from loopline.cards import store_card
from loopline.config import current_user
from loopline.errors import Conflict, InvalidInput, PromotionRefused, SelfApproval
from loopline.project import Stores, stores
from loopline.promotion.gates import GateReport, check_gates
from loopline.promotion.policy import Policy, project_policy
from loopline.registry import ModelRef, ModelStatus, ModelVersion, resolve, set_alias, set_status
from loopline.store import model_status

log = logging.getLogger(__name__)

_PENDING = "model_version.awaiting_approval"


@dataclass(frozen=True)
class Promotion:
    """What a promotion did: the version as it now stands, the gates, and whether it waits
    for an approval."""

    version: ModelVersion
    gates: GateReport | None
    forced: bool = False
    awaiting_approval: bool = False
    alias: str | None = None


def promote(
    ref: str | ModelRef | ModelVersion,
    *,
    to: ModelStatus | str = ModelStatus.PRODUCTION,
    alias: str | None = None,
    reason: str | None = None,
    force: bool = False,
    policy: Policy | None = None,
    data: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
) -> Promotion:
    """Check the gates, then move the version to `to` (and `alias` to it).

    `trusted` and `allow_pickle` are for loading the versions the gates evaluate.

    Raises:
        PromotionRefused: a gate failed and `force` was not given.
        Conflict: the version is archived, or already past `to`.
        InvalidInput: `force` without a reason.
    """
    opened = stores()
    actor = actor or current_user()
    status = model_status(to)
    if status == ModelStatus.ARCHIVED:
        raise InvalidInput("use `archive` to archive a version, not promote")
    if force and not (reason and reason.strip()):
        raise InvalidInput("--force needs a --reason: forced promotions are audited")
    version = resolve(ref, opened=opened)
    if version.status == ModelStatus.ARCHIVED:
        raise Conflict(f"{version.ref} is archived and cannot be promoted")
    policy = policy or project_policy(opened.settings, version.model)
    gates = check_gates(
        version,
        policy=policy,
        data=data,
        target=target,
        trusted=trusted,
        allow_pickle=allow_pickle,
        opened=opened,
    )
    if not gates.passed:
        failures = [f"{r.rule}: {r.reason}" for r in gates.failures]
        if not force:
            opened.metadata.audit.record(
                actor=actor,
                action="model_version.promotion_refused",
                object_type="model_version",
                object_id=version.ref,
                after={"to": status.value, "alias": alias, "failed_rules": failures},
                reason=reason,
            )
            raise PromotionRefused(
                f"{version.ref} failed {len(failures)} of {len(gates.results)} gate rules",
                failures=failures,
                hint="fix the model, or pass --force --reason '...' (audited)",
            )
        _audit_force(opened, version, failures, reason or "", actor)
    approved = any(  # one's own approval does not count
        approval.stage == policy.approval_stage and approval.actor != actor
        for approval in opened.metadata.reviews.list_approvals(version.id)
    )
    needs_approval = (
        policy.require_approval and status.value == policy.approval_stage and not approved
    )
    if needs_approval:
        version = _wait_for_approval(opened, version, status, alias, reason, actor)
        return Promotion(version, gates, force, awaiting_approval=True, alias=alias)
    version = _apply(opened, version, status, alias, reason, actor)
    return Promotion(version, gates, force, alias=alias)


def approve(
    ref: str | ModelRef | ModelVersion,
    *,
    reason: str,
    stage: str = ModelStatus.PRODUCTION.value,
    actor: str | None = None,
) -> Promotion | None:
    """Record an approval; a promotion waiting for it completes now (returned).

    Raises:
        SelfApproval: `actor` requested the waiting promotion (nothing is approved).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("an approval needs a reason")
    opened = stores()
    actor = actor or current_user()
    version = resolve(ref, opened=opened)
    if version.status == ModelStatus.ARCHIVED:
        raise Conflict(f"{version.ref} is archived; there is nothing to approve")
    pending = _pending(opened, version)
    if pending is not None and pending.requester == actor:
        _refuse_self_approval(opened, version, actor, reason)
    opened.metadata.reviews.add_approval(
        version.id, version.ref, stage=model_status(stage).value, actor=actor, reason=reason
    )
    if pending is None:
        store_card(version, opened=opened)
        return None
    version = _apply(opened, version, pending.to, pending.alias, f"approved: {reason}", actor)
    return Promotion(version, None, alias=pending.alias)


def _refuse_self_approval(opened: Stores, version: ModelVersion, actor: str, reason: str) -> None:
    opened.metadata.audit.record(
        actor=actor,
        action="model_version.self_approval_refused",
        object_type="model_version",
        object_id=version.ref,
        reason=reason,
    )
    raise SelfApproval(
        f"{actor} requested the promotion of {version.ref} and cannot approve it",
        hint="another user with the approver role must approve it",
    )


def _apply(
    opened: Stores,
    version: ModelVersion,
    status: ModelStatus,
    alias: str | None,
    reason: str | None,
    actor: str,
) -> ModelVersion:
    if version.status != status:
        version = set_status(version, status, reason=reason, actor=actor, opened=opened)
    if alias is not None:
        set_alias(version, alias, reason=reason, actor=actor, opened=opened)
    store_card(version, opened=opened)
    return opened.metadata.models.get_version_by_id(version.id)


def _wait_for_approval(
    opened: Stores,
    version: ModelVersion,
    status: ModelStatus,
    alias: str | None,
    reason: str | None,
    actor: str,
) -> ModelVersion:
    if version.status == ModelStatus.CANDIDATE:
        version = set_status(
            version, ModelStatus.STAGING, reason="waiting for approval", actor=actor, opened=opened
        )
    opened.metadata.audit.record(
        actor=actor,
        action=_PENDING,
        object_type="model_version",
        object_id=version.ref,
        after={"to": status.value, "alias": alias},
        reason=reason,
    )
    store_card(version, opened=opened)
    return version


@dataclass(frozen=True)
class _Pending:
    """A promotion waiting for an approval: where to, which alias, and who asked."""

    to: ModelStatus
    alias: str | None
    requester: str


def _pending(opened: Stores, version: ModelVersion) -> _Pending | None:
    """The promotion waiting for an approval, if the latest one has not completed."""
    events = opened.metadata.audit.list_events(object_id=version.ref, limit=50)
    for event in events:
        moved_on = (event.after or {}).get("status") != ModelStatus.STAGING.value
        if event.action == "model_version.status" and moved_on:
            return None  # the status changed since the promotion started waiting
        if event.action == _PENDING and event.after:
            if version.status != ModelStatus.STAGING:
                return None
            alias = event.after.get("alias")
            return _Pending(
                model_status(event.after["to"]), None if alias is None else str(alias), event.actor
            )
    return None


def _audit_force(
    opened: Stores, version: ModelVersion, failures: list[str], reason: str, actor: str
) -> None:
    log.warning("forcing %s past %d failed gate rules: %s", version.ref, len(failures), reason)
    opened.metadata.audit.record(
        actor=actor,
        action="model_version.force",
        object_type="model_version",
        object_id=version.ref,
        after={"failed_rules": failures},
        reason=reason,
    )
