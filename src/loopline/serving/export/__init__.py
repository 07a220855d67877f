"""Exports: a deployment written out to run elsewhere (Docker, Kubernetes, KServe)."""

from loopline.serving.export._deployment import (
    TARGETS,
    ExportResult,
    export_deployment,
    kubernetes_name,
)

__all__ = ["TARGETS", "ExportResult", "export_deployment", "kubernetes_name"]
