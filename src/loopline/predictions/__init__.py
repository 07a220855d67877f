"""The prediction log (every answered request, written off the response path) and feedback."""

from loopline.predictions._block import Block
from loopline.predictions._feedback import read_feedback, record_feedback
from loopline.predictions._lookup import check_request_id, read_request
from loopline.predictions._reader import prediction_log_files, read_log_files, read_predictions
from loopline.predictions._records import PredictionBatch, PredictionRecord, dropped_fields
from loopline.predictions._spool import DEFAULT_DURABILITY, PredictionLog, check_durability
from loopline.predictions._traffic import Traffic, read_traffic
from loopline.predictions._window import parse_duration, parse_since
from loopline.predictions._writer import read_rejected

__all__ = [
    "DEFAULT_DURABILITY",
    "Block",
    "PredictionBatch",
    "PredictionLog",
    "PredictionRecord",
    "Traffic",
    "check_durability",
    "check_request_id",
    "dropped_fields",
    "parse_duration",
    "parse_since",
    "prediction_log_files",
    "read_feedback",
    "read_log_files",
    "read_predictions",
    "read_rejected",
    "read_request",
    "read_traffic",
    "record_feedback",
]
