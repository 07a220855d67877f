"""Batch prediction: a registered model over a file or a dataset version, locally or on Ray."""

from loopline.serving.batch._predict import BatchResult, predict_batch

__all__ = ["BatchResult", "predict_batch"]
