"""Importing other tools' stores into loopline: `import_mlflow` (a database or a server)."""

from loopline.importers.mlflow import ImportSummary, import_mlflow

__all__ = ["ImportSummary", "import_mlflow"]
