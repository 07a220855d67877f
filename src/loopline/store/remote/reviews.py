"""`ReviewStore` over HTTP: evaluations, gate checks and approvals of a model version,
answered by the server's /api/v1/model-versions/{id}/... routes (server/api/reviews.py).

None of the adds is retried after a dropped connection: each repeat would add a record.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from loopline.store.remote._codec import decode
from loopline.store.remote._paths import segment
from loopline.store.review_records import Approval, EvaluationRecord, GateCheck

if TYPE_CHECKING:
    from loopline.store.remote._session import RemoteSession


class RemoteReviewStore:
    """Evaluations, gate checks and approvals through a loopline server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

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
        answer = self._session.call(
            "POST",
            _path(version_id, "evaluations"),
            body={
                "data_ref": data_ref,
                "dataset_version_id": dataset_version_id,
                "target": target,
                "config_hash": config_hash,
                "report_hash": report_hash,
                "html_hash": html_hash,
                # as the local store keeps them: a NaN or a non-JSON value is refused here
                "metrics": json.loads(json.dumps(metrics, allow_nan=False)),
                "created_by": created_by,
            },
        )
        record: EvaluationRecord = decode(EvaluationRecord, answer)
        return record

    def list_evaluations(self, version_id: str) -> list[EvaluationRecord]:
        """A version's evaluations, newest first."""
        answer = self._session.call("GET", _path(version_id, "evaluations"))
        records: list[EvaluationRecord] = decode(list[EvaluationRecord], answer)
        return records

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
        answer = self._session.call(
            "POST",
            _path(version_id, "gate-checks"),
            body={
                "evaluation_id": evaluation_id,
                "policy": json.loads(json.dumps(policy, default=str)),
                "passed": passed,
                "results": json.loads(json.dumps(results, default=str)),
                "created_by": created_by,
            },
        )
        check: GateCheck = decode(GateCheck, answer)
        return check

    def list_gate_checks(self, version_id: str) -> list[GateCheck]:
        answer = self._session.call("GET", _path(version_id, "gate-checks"))
        checks: list[GateCheck] = decode(list[GateCheck], answer)
        return checks

    def add_approval(
        self, version_id: str, ref: str, *, stage: str, actor: str, reason: str
    ) -> Approval:
        answer = self._session.call(
            "POST",
            _path(version_id, "approvals"),
            body={"ref": ref, "stage": stage, "actor": actor, "reason": reason},
        )
        approval: Approval = decode(Approval, answer)
        return approval

    def list_approvals(self, version_id: str) -> list[Approval]:
        """A version's approvals, oldest first."""
        answer = self._session.call("GET", _path(version_id, "approvals"))
        approvals: list[Approval] = decode(list[Approval], answer)
        return approvals


def _path(version_id: str, what: str) -> str:
    return f"/model-versions/{segment(version_id)}/{what}"
