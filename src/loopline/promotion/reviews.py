"""Reading a version's reviews: the gate checks and approvals recorded for it."""

from __future__ import annotations

from loopline.project import stores
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import Approval, GateCheck


def list_gate_checks(ref: str | ModelRef | ModelVersion) -> list[GateCheck]:
    """The gate checks of a version, newest first."""
    opened = stores()
    return opened.metadata.reviews.list_gate_checks(resolve(ref, opened=opened).id)


def list_approvals(ref: str | ModelRef | ModelVersion) -> list[Approval]:
    """The approvals recorded for a version, newest first."""
    opened = stores()
    return opened.metadata.reviews.list_approvals(resolve(ref, opened=opened).id)
