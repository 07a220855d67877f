"""What the prediction log records: one answered request (`PredictionRecord`), or the
requests one predict call answered together (`PredictionBatch`), with their input rows
as a `Block`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from loopline.predictions._block import Block


@dataclass(slots=True)  # not frozen: a frozen dataclass takes ~3x longer to build
class PredictionRecord:
    """One answered request: who asked, which version answered, what it said, how fast.

    `inputs` are the request's rows ({field: value}, as sent); `predictions` and
    `probabilities` are the model's outputs for them (numpy arrays); `latency_ms` runs
    from the request's arrival to its predictions. With a shadow model, `shadow_version`
    names it and `shadow_predictions`/`shadow_probabilities` hold what it said, or
    `shadow_error` why it failed (the shadow never answers the client).
    `dropped_fields` names the fields the request sent that are not model inputs.
    """

    request_id: str
    time: datetime
    deployment: str
    model_version: str
    runtime_version: str
    endpoint: str
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    latency_ms: float
    block: Block = field(repr=False)
    shadow_version: str | None = None
    shadow_predictions: np.ndarray[Any, Any] | None = None
    shadow_probabilities: np.ndarray[Any, Any] | None = None
    shadow_error: str | None = None
    dropped_fields: tuple[str, ...] = ()

    @property
    def input_names(self) -> tuple[str, ...]:
        """The input columns, in signature order."""
        return self.block.names

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The request's rows as {field: value} dicts."""
        return self.block.rows()

    @property
    def columns(self) -> dict[str, Sequence[Any]]:
        """The request's values column by column (what a columnar log stores)."""
        return dict(zip(self.block.names, self.block.columns(), strict=True))


@dataclass(slots=True)
class PredictionBatch:
    """The requests one predict call answered, kept together: what the server hands the
    prediction log under load, so that logging costs per batch, not per request.

    Per request: `request_ids`, `times` (arrival), `endpoints`, `latency_ms` (arrival to
    predictions), `row_counts` and `dropped_fields` (the fields each request sent that are
    not inputs; None when no request sent any); for all of them at once: `block` (the
    rows merged, in request order), `predictions` and `probabilities`.
    """

    deployment: str
    model_version: str
    runtime_version: str
    request_ids: list[str]
    times: list[datetime]
    endpoints: list[str]
    latency_ms: np.ndarray[Any, Any]
    row_counts: np.ndarray[Any, Any]
    block: Block
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    shadow_version: str | None = None
    shadow_predictions: np.ndarray[Any, Any] | None = None
    shadow_probabilities: np.ndarray[Any, Any] | None = None
    shadow_error: str | None = None
    dropped_fields: list[tuple[str, ...]] | None = None

    @classmethod
    def of(cls, record: PredictionRecord) -> PredictionBatch:
        """One request's record as a batch of one."""
        import numpy as np

        return cls(
            deployment=record.deployment,
            model_version=record.model_version,
            runtime_version=record.runtime_version,
            request_ids=[record.request_id],
            times=[record.time],
            endpoints=[record.endpoint],
            latency_ms=np.array([record.latency_ms], np.float64),
            row_counts=np.array([record.block.n_rows], np.int64),
            block=record.block,
            predictions=record.predictions,
            probabilities=record.probabilities,
            shadow_version=record.shadow_version,
            shadow_predictions=record.shadow_predictions,
            shadow_probabilities=record.shadow_probabilities,
            shadow_error=record.shadow_error,
            dropped_fields=[record.dropped_fields] if record.dropped_fields else None,
        )

    def records(self) -> list[PredictionRecord]:
        """One PredictionRecord per request (for sinks that take records one by one)."""
        found = []
        start = 0
        for i, count in enumerate(self.row_counts.tolist()):
            rows = slice(start, start + count)
            found.append(
                PredictionRecord(
                    request_id=self.request_ids[i],
                    time=self.times[i],
                    deployment=self.deployment,
                    model_version=self.model_version,
                    runtime_version=self.runtime_version,
                    endpoint=self.endpoints[i],
                    predictions=self.predictions[rows],
                    probabilities=_rows(self.probabilities, rows),
                    latency_ms=float(self.latency_ms[i]),
                    block=self.block.slice(rows.start, rows.stop),
                    shadow_version=self.shadow_version,
                    shadow_predictions=_rows(self.shadow_predictions, rows),
                    shadow_probabilities=_rows(self.shadow_probabilities, rows),
                    shadow_error=self.shadow_error,
                    dropped_fields=() if self.dropped_fields is None else self.dropped_fields[i],
                )
            )
            start = rows.stop
        return found


def dropped_fields(blocks: Sequence[Block]) -> list[tuple[str, ...]] | None:
    """Per request, the fields it sent that are not inputs (None when none did)."""
    found = [block.dropped for block in blocks]
    return found if any(found) else None


def _rows(array: np.ndarray[Any, Any] | None, rows: slice) -> np.ndarray[Any, Any] | None:
    return None if array is None else array[rows]
