"""Metadata and artifact stores: the bottom layer every area builds on."""

from loopline.store._metrics import Point as MetricRow
from loopline.store._names import check_key
from loopline.store.artifacts import ArtifactStore, Blob, StoredFile
from loopline.store.datasets import Dataset, DatasetVersion, ValidationRecord, check_dataset_name
from loopline.store.metadata import MetadataStore
from loopline.store.paths import resolve_under, validate_logical_path
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

__all__ = [
    "ArtifactStore",
    "Blob",
    "CodeVersion",
    "Dataset",
    "DatasetVersion",
    "Direction",
    "Experiment",
    "LinkKind",
    "MetadataStore",
    "MetricPoint",
    "MetricRow",
    "Run",
    "RunLink",
    "RunStatus",
    "StoredFile",
    "ValidationRecord",
    "check_dataset_name",
    "check_key",
    "resolve_under",
    "validate_logical_path",
]
