"""What was learned about a model version over HTTP: evaluations, gate checks and
approvals, the routes the remote `ReviewStore` (store/remote/reviews.py) calls.

Reads need READER; evaluations and gate checks WRITER; an approval APPROVER, recorded
(and audited) under the authenticated user, on the version the path names: the ref the
audit event carries is the server's, a client's that disagrees is refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api._bodies import Body, checked_id
from loopline.server.app import stores_of
from loopline.store import ModelVersion
from loopline.store.reviews import ReviewStore

router = APIRouter(tags=["reviews"])


class NewEvaluation(Body):
    data_ref: str
    dataset_version_id: str | None = None
    target: str
    config_hash: str
    report_hash: str
    html_hash: str
    metrics: dict[str, Any]
    created_by: str | None = None


class NewGateCheck(Body):
    evaluation_id: str | None = None
    policy: dict[str, Any]
    passed: bool
    results: list[dict[str, Any]]
    created_by: str | None = None


class NewApproval(Body):
    ref: str
    stage: str
    actor: str | None = None
    reason: str


def _reviews(request: Request) -> ReviewStore:
    return stores_of(request).metadata.reviews


def _version(request: Request, version_id: str) -> ModelVersion:
    """The version the path names (400 for an id of the wrong shape, 404 for none)."""
    models = stores_of(request).metadata.models
    return models.get_version_by_id(checked_id(version_id, "version id"))


@router.post("/model-versions/{version_id}/evaluations")
def add_evaluation(
    request: Request,
    version_id: str,
    body: NewEvaluation,
    caller: Caller = requires(Role.WRITER),
) -> Response:
    version = _version(request, version_id)
    record = _reviews(request).add_evaluation(
        version.id,
        data_ref=body.data_ref,
        dataset_version_id=body.dataset_version_id,
        target=body.target,
        config_hash=body.config_hash,
        report_hash=body.report_hash,
        html_hash=body.html_hash,
        metrics=body.metrics,
        created_by=caller.acting_as(body.created_by),
    )
    return answer(record, 201)


@router.get("/model-versions/{version_id}/evaluations")
def list_evaluations(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    """A version's evaluations, newest first."""
    found = _reviews(request).list_evaluations(checked_id(version_id, "version id"))
    return answer(found)


@router.post("/model-versions/{version_id}/gate-checks")
def add_gate_check(
    request: Request,
    version_id: str,
    body: NewGateCheck,
    caller: Caller = requires(Role.WRITER),
) -> Response:
    version = _version(request, version_id)
    check = _reviews(request).add_gate_check(
        version.id,
        evaluation_id=body.evaluation_id,
        policy=body.policy,
        passed=body.passed,
        results=body.results,
        created_by=caller.acting_as(body.created_by),
    )
    return answer(check, 201)


@router.get("/model-versions/{version_id}/gate-checks")
def list_gate_checks(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    """A version's gate checks, newest first."""
    found = _reviews(request).list_gate_checks(checked_id(version_id, "version id"))
    return answer(found)


@router.post("/model-versions/{version_id}/approvals")
def add_approval(
    request: Request,
    version_id: str,
    body: NewApproval,
    caller: Caller = requires(Role.APPROVER),
) -> Response:
    """Approve the version for a stage; audited under the authenticated user."""
    version = _version(request, version_id)
    if body.ref != version.ref:
        raise InvalidInput(f"version {version_id} is {version.ref}, not {body.ref!r}")
    approval = _reviews(request).add_approval(
        version.id,
        version.ref,
        stage=body.stage,
        actor=caller.acting_as(body.actor),
        reason=body.reason,
    )
    return answer(approval, 201)


@router.get("/model-versions/{version_id}/approvals")
def list_approvals(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    """A version's approvals, oldest first."""
    found = _reviews(request).list_approvals(checked_id(version_id, "version id"))
    return answer(found)
