"""What was learned about a model version: evaluations, gate checks and approvals.

Reports themselves are blobs in the artifact store; these rows index them by version.
Approvals are audited in the same transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopline.store._schema import approvals, gate_checks, model_evaluations
from loopline.store.audit import record_event
from loopline.store.records import new_id
from loopline.store.review_records import Approval, EvaluationRecord, GateCheck

if TYPE_CHECKING:
    from loopline.store._db import Database


class ReviewStore:
    """Evaluations, gate checks and approvals; reached as `MetadataStore.reviews`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_evaluation(
        self,
        version_id: str,
        *,
        data_ref: str,
        dataset_version_id: str | None,
        target: str,
        config_hash: str,
        report_hash: str,
        html_hash: str,
        metrics: dict[str, Any],
        created_by: str,
    ) -> EvaluationRecord:
        record = EvaluationRecord(
            new_id(),
            version_id,
            data_ref,
            dataset_version_id,
            target,
            config_hash,
            report_hash,
            html_hash,
            metrics,
            created_by,
            datetime.now(UTC),
        )
        with self._db.write("store evaluation") as conn:
            conn.execute(
                model_evaluations.insert().values(
                    id=record.id,
                    version_id=version_id,
                    data_ref=data_ref,
                    dataset_version_id=dataset_version_id,
                    target=target,
                    config_hash=config_hash,
                    report_hash=report_hash,
                    html_hash=html_hash,
                    metrics_json=json.dumps(metrics, allow_nan=False),
                    created_by=created_by,
                    created_at=record.created_at,
                )
            )
        return record

    def list_evaluations(self, version_id: str) -> list[EvaluationRecord]:
        """A version's evaluations, newest first."""
        stmt = (
            select(model_evaluations)
            .where(model_evaluations.c.version_id == version_id)
            .order_by(model_evaluations.c.created_at.desc())
        )
        with self._db.read() as conn:
            return [
                EvaluationRecord(
                    r.id,
                    r.version_id,
                    r.data_ref,
                    r.dataset_version_id,
                    r.target,
                    r.config_hash,
                    r.report_hash,
                    r.html_hash,
                    json.loads(r.metrics_json),
                    r.created_by,
                    r.created_at,
                )
                for r in conn.execute(stmt)
            ]

    def add_gate_check(
        self,
        version_id: str,
        *,
        evaluation_id: str | None,
        policy: dict[str, Any],
        passed: bool,
        results: list[dict[str, Any]],
        created_by: str,
    ) -> GateCheck:
        check = GateCheck(
            new_id(),
            version_id,
            evaluation_id,
            policy,
            passed,
            results,
            created_by,
            datetime.now(UTC),
        )
        with self._db.write("store gate check") as conn:
            conn.execute(
                gate_checks.insert().values(
                    id=check.id,
                    version_id=version_id,
                    evaluation_id=evaluation_id,
                    policy_json=json.dumps(policy, default=str),
                    passed=passed,
                    results_json=json.dumps(results, default=str),
                    created_by=created_by,
                    created_at=check.created_at,
                )
            )
        return check

    def list_gate_checks(self, version_id: str) -> list[GateCheck]:
        stmt = (
            select(gate_checks)
            .where(gate_checks.c.version_id == version_id)
            .order_by(gate_checks.c.created_at.desc())
        )
        with self._db.read() as conn:
            return [
                GateCheck(
                    r.id,
                    r.version_id,
                    r.evaluation_id,
                    json.loads(r.policy_json),
                    r.passed,
                    json.loads(r.results_json),
                    r.created_by,
                    r.created_at,
                )
                for r in conn.execute(stmt)
            ]

    def add_approval(
        self, version_id: str, ref: str, *, stage: str, actor: str, reason: str
    ) -> Approval:
        approval = Approval(new_id(), version_id, stage, actor, reason, datetime.now(UTC))
        with self._db.write("store approval") as conn:
            conn.execute(
                approvals.insert().values(
                    id=approval.id,
                    version_id=version_id,
                    stage=stage,
                    actor=actor,
                    reason=reason,
                    created_at=approval.created_at,
                )
            )
            record_event(
                conn,
                actor=actor,
                action="model_version.approve",
                object_type="model_version",
                object_id=ref,
                after={"stage": stage},
                reason=reason,
            )
        return approval

    def list_approvals(self, version_id: str) -> list[Approval]:
        stmt = (
            select(approvals)
            .where(approvals.c.version_id == version_id)
            .order_by(approvals.c.created_at)
        )
        with self._db.read() as conn:
            return [
                Approval(r.id, r.version_id, r.stage, r.actor, r.reason, r.created_at)
                for r in conn.execute(stmt)
            ]


__all__ = ["Approval", "EvaluationRecord", "GateCheck", "ReviewStore"]
