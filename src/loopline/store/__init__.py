"""Metadata and artifact stores: the bottom layer every area builds on."""

from loopline.store._metrics import Point as MetricRow
from loopline.store._names import check_key, tag_text
from loopline.store.artifacts import ArtifactStore, Blob, StoredFile
from loopline.store.audit import AuditEvent, AuditLog
from loopline.store.datasets import Dataset, DatasetVersion, ValidationRecord, check_dataset_name
from loopline.store.metadata import MetadataStore
from loopline.store.model_records import (
    ModelStatus,
    ModelVersion,
    RegisteredModel,
    check_alias,
    check_model_name,
    model_status,
)
from loopline.store.models import ModelStore
from loopline.store.paths import control_folder, resolve_under, validate_logical_path
from loopline.store.records import (
    CodeVersion,
    Direction,
    Experiment,
    LinkKind,
    MetricPoint,
    Run,
    RunLink,
    RunStatus,
)
from loopline.store.reviews import Approval, EvaluationRecord, GateCheck, ReviewStore

__all__ = [
    "Approval",
    "ArtifactStore",
    "AuditEvent",
    "AuditLog",
    "Blob",
    "CodeVersion",
    "Dataset",
    "DatasetVersion",
    "Direction",
    "EvaluationRecord",
    "Experiment",
    "GateCheck",
    "LinkKind",
    "MetadataStore",
    "MetricPoint",
    "MetricRow",
    "ModelStatus",
    "ModelStore",
    "ModelVersion",
    "RegisteredModel",
    "ReviewStore",
    "Run",
    "RunLink",
    "RunStatus",
    "StoredFile",
    "ValidationRecord",
    "check_alias",
    "check_dataset_name",
    "check_key",
    "check_model_name",
    "control_folder",
    "model_status",
    "resolve_under",
    "tag_text",
    "validate_logical_path",
]
