"""Models for users: `log_model`, `load` by reference, export to ONNX."""

from loopline.models._packages import StoredPackage, read_package
from loopline.models.exporting import ExportResult, export
from loopline.models.lineage import model_lineage
from loopline.models.loading import load, load_version, recorded_trust
from loopline.models.logging import log_model, register_package
from loopline.packaging import LoadedModel, Signature, infer_signature

__all__ = [
    "ExportResult",
    "LoadedModel",
    "Signature",
    "StoredPackage",
    "export",
    "infer_signature",
    "load",
    "load_version",
    "log_model",
    "model_lineage",
    "read_package",
    "recorded_trust",
    "register_package",
]
