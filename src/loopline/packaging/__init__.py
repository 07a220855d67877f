"""Model packages: flavors, signatures, the `loopline-model.yaml` manifest, safe loading."""

from loopline.packaging._flavors import detect_flavor
from loopline.packaging._loaded import LoadedModel
from loopline.packaging._manifest import MANIFEST_NAME, ModelManifest, read_manifest, verify_package
from loopline.packaging._package import load_model, save_model
from loopline.packaging._predictors import load_estimator
from loopline.packaging._signature import (
    ColumnSpec,
    Signature,
    SignatureWarning,
    example_frame,
    infer_signature,
)
from loopline.packaging._trust import check_trusted, merge_trusted

__all__ = [
    "MANIFEST_NAME",
    "ColumnSpec",
    "LoadedModel",
    "ModelManifest",
    "Signature",
    "SignatureWarning",
    "check_trusted",
    "detect_flavor",
    "example_frame",
    "infer_signature",
    "load_estimator",
    "load_model",
    "merge_trusted",
    "read_manifest",
    "save_model",
    "verify_package",
]
