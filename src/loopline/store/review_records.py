"""What the review tables hold, as plain records: importable without SQLAlchemy (the
remote client reads them back from the server's answers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EvaluationRecord:
    id: str
    version_id: str
    data_ref: str
    dataset_version_id: str | None
    target: str
    config_hash: str
    report_hash: str
    html_hash: str
    metrics: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class GateCheck:
    id: str
    version_id: str
    evaluation_id: str | None
    policy: dict[str, Any]
    passed: bool
    results: list[dict[str, Any]]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Approval:
    id: str
    version_id: str
    stage: str
    actor: str
    reason: str
    created_at: datetime
