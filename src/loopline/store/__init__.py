"""Metadata and artifact stores: the bottom layer every area builds on.

Names are imported on first use (as in `loopline/__init__.py`): the artifact store, the
records and path checks need no SQLAlchemy, so a command that touches only them (an
unchanged `loopline data add`) starts without importing it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.store._audit_verify import AuditChainProblem, AuditChainReport
    from loopline.store._blob_io import BlobReader
    from loopline.store._imported_runs import ImportedRun
    from loopline.store._metrics import Point as MetricRow
    from loopline.store._names import check_experiment_name, check_key, tag_text
    from loopline.store._quick import quick_latest_version
    from loopline.store.artifacts import ArtifactStore, Blob, StoredFile
    from loopline.store.audit import AuditEvent, AuditLog, AuditPage
    from loopline.store.dataset_records import (
        Dataset,
        DatasetVersion,
        ValidationRecord,
        check_dataset_name,
    )
    from loopline.store.metadata import MetadataStore
    from loopline.store.model_records import (
        ModelStatus,
        ModelVersion,
        RegisteredModel,
        check_alias,
        check_model_name,
        model_status,
    )
    from loopline.store.model_registry import ModelStore
    from loopline.store.paths import control_folder, resolve_under, validate_logical_path
    from loopline.store.records import (
        CodeVersion,
        Direction,
        Experiment,
        LinkKind,
        MetricPoint,
        MetricSeries,
        MetricSpan,
        Run,
        RunKeys,
        RunLink,
        RunsPage,
        RunStatus,
    )
    from loopline.store.review_records import Approval, EvaluationRecord, GateCheck
    from loopline.store.reviews import ReviewStore
    from loopline.store.runs import RunStore

# Where each public name is defined (a new name goes here, in the block above and in __all__).
_HOMES = {
    "AuditChainProblem": ("_audit_verify", None),
    "AuditChainReport": ("_audit_verify", None),
    "BlobReader": ("_blob_io", None),
    "ImportedRun": ("_imported_runs", None),
    "MetricRow": ("_metrics", "Point"),
    "check_experiment_name": ("_names", None),
    "check_key": ("_names", None),
    "tag_text": ("_names", None),
    "quick_latest_version": ("_quick", None),
    "ArtifactStore": ("artifacts", None),
    "Blob": ("artifacts", None),
    "StoredFile": ("artifacts", None),
    "AuditEvent": ("audit", None),
    "AuditLog": ("audit", None),
    "AuditPage": ("audit", None),
    "Dataset": ("dataset_records", None),
    "DatasetVersion": ("dataset_records", None),
    "ValidationRecord": ("dataset_records", None),
    "check_dataset_name": ("dataset_records", None),
    "MetadataStore": ("metadata", None),
    "ModelStatus": ("model_records", None),
    "ModelVersion": ("model_records", None),
    "RegisteredModel": ("model_records", None),
    "check_alias": ("model_records", None),
    "check_model_name": ("model_records", None),
    "model_status": ("model_records", None),
    "ModelStore": ("model_registry", None),
    "control_folder": ("paths", None),
    "resolve_under": ("paths", None),
    "validate_logical_path": ("paths", None),
    "CodeVersion": ("records", None),
    "Direction": ("records", None),
    "Experiment": ("records", None),
    "LinkKind": ("records", None),
    "MetricPoint": ("records", None),
    "MetricSeries": ("records", None),
    "MetricSpan": ("records", None),
    "Run": ("records", None),
    "RunKeys": ("records", None),
    "RunLink": ("records", None),
    "RunsPage": ("records", None),
    "RunStatus": ("records", None),
    "Approval": ("review_records", None),
    "EvaluationRecord": ("review_records", None),
    "GateCheck": ("review_records", None),
    "ReviewStore": ("reviews", None),
    "RunStore": ("runs", None),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loopline.store' has no attribute {name!r}")
    module, attribute = home
    value = getattr(import_module(f"loopline.store.{module}"), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


__all__ = [
    "Approval",
    "ArtifactStore",
    "AuditChainProblem",
    "AuditChainReport",
    "AuditEvent",
    "AuditLog",
    "AuditPage",
    "Blob",
    "BlobReader",
    "CodeVersion",
    "Dataset",
    "DatasetVersion",
    "Direction",
    "EvaluationRecord",
    "Experiment",
    "GateCheck",
    "ImportedRun",
    "LinkKind",
    "MetadataStore",
    "MetricPoint",
    "MetricRow",
    "MetricSeries",
    "MetricSpan",
    "ModelStatus",
    "ModelStore",
    "ModelVersion",
    "RegisteredModel",
    "ReviewStore",
    "Run",
    "RunKeys",
    "RunLink",
    "RunStatus",
    "RunStore",
    "RunsPage",
    "StoredFile",
    "ValidationRecord",
    "check_alias",
    "check_dataset_name",
    "check_experiment_name",
    "check_key",
    "check_model_name",
    "control_folder",
    "model_status",
    "quick_latest_version",
    "resolve_under",
    "tag_text",
    "validate_logical_path",
]
