"""The prediction log's index and the feedback labels: a serving process indexes the
Parquet files it stored, a labeller sends ground truth back; both need the writer role.

Bytes (a file's request filter, the block of it a lookup picks) travel as base64.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.predictions import check_request_id
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api.deployments import deployment_name
from loopline.server.app import stores_of
from loopline.store.predictions import LogSketch, RequestFilter

router = APIRouter(tags=["predictions"])

MAX_FEEDBACK_ITEMS = 100_000
MAX_FILTER_BYTES = 64 * 1024 * 1024


class FilterBody(BaseModel):
    """A log file's request-id filter: `blocks` blocks, its bytes in base64."""

    model_config = ConfigDict(extra="forbid")
    blocks: StrictInt
    bits: StrictStr = Field(max_length=MAX_FILTER_BYTES * 4 // 3 + 4)


class SketchBody(BaseModel):
    """Where a log file's sketches are: a blob hash and its layout."""

    model_config = ConfigDict(extra="forbid")
    sketch_hash: StrictStr
    format: StrictInt


class LogFile(BaseModel):
    """A stored Parquet file of logged predictions to index."""

    model_config = ConfigDict(extra="forbid")
    hour: datetime
    blob_hash: StrictStr
    rows: StrictInt = Field(ge=0)
    first_time: datetime
    last_time: datetime
    size_bytes: StrictInt = Field(ge=0)
    request_filter: FilterBody | None = None
    sketch: SketchBody | None = None


class Feedback(BaseModel):
    """Labels for rows of logged requests: [request_id, row, label_json] each."""

    model_config = ConfigDict(extra="forbid")
    items: list[tuple[StrictStr, StrictInt, StrictStr]] = Field(max_length=MAX_FEEDBACK_ITEMS)
    time: datetime | None = None


@router.post("/deployments/{deployment}/prediction-log/files")
def add_file(
    deployment: str, request: Request, body: LogFile, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Index a stored log file; `indexed` is false if it was indexed already."""
    request_filter = None
    if body.request_filter is not None:
        bits = _unbase64(body.request_filter.bits, "request_filter.bits")
        request_filter = RequestFilter(blocks=body.request_filter.blocks, bits=bits)
    sketch = None if body.sketch is None else LogSketch(body.sketch.sketch_hash, body.sketch.format)
    indexed = stores_of(request).metadata.predictions.add_file(
        deployment_name(deployment),
        hour=body.hour,
        blob_hash=body.blob_hash,
        rows=body.rows,
        first_time=body.first_time,
        last_time=body.last_time,
        size_bytes=body.size_bytes,
        request_filter=request_filter,
        sketch=sketch,
    )
    return answer({"indexed": indexed})


@router.get("/deployments/{deployment}/prediction-log/files")
def files(
    deployment: str,
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """The indexed files holding records in [since, until), by time."""
    store = stores_of(request).metadata.predictions
    return answer(store.files(deployment_name(deployment), since, until))


@router.get("/deployments/{deployment}/prediction-log/sketches")
def sketches(
    deployment: str,
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Log file blob hash -> where its sketches are, for the files in [since, until)."""
    store = stores_of(request).metadata.predictions
    return answer(store.sketches(deployment_name(deployment), since, until))


@router.get("/prediction-log/request-blocks")
def files_for_request(
    request: Request,
    block_hash: Annotated[int, Query(ge=0, lt=2**31)],
    deployment: str | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Every indexed file (of `deployment`, or of all) with the block of its request filter
    that `block_hash` picks (base64), or null for a file indexed without a filter."""
    name = None if deployment is None else deployment_name(deployment)
    found = stores_of(request).metadata.predictions.files_for_request(block_hash, name)
    return answer(
        [
            {"file": file, "block": None if block is None else base64.b64encode(block).decode()}
            for file, block in found
        ]
    )


@router.post("/deployments/{deployment}/feedback")
def add_feedback(
    deployment: str, request: Request, body: Feedback, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Append labels in one transaction; how many."""
    for request_id, _, _ in body.items:
        check_request_id(request_id)
    items = [(request_id, row, label) for request_id, row, label in body.items]
    store = stores_of(request).metadata.predictions
    added = store.add_feedback(deployment_name(deployment), items, time=body.time)
    return answer({"added": added})


@router.get("/deployments/{deployment}/feedback")
def feedback(
    deployment: str,
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Labels recorded in [since, until), oldest first, the newest of each row."""
    store = stores_of(request).metadata.predictions
    return answer(store.feedback(deployment_name(deployment), since, until))


@router.get("/deployments/{deployment}/feedback/{request_id}")
def feedback_for_request(
    deployment: str, request_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """The newest label of each row of one request, by row."""
    store = stores_of(request).metadata.predictions
    return answer(
        store.feedback_for_request(deployment_name(deployment), check_request_id(request_id))
    )


def _unbase64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInput(f"{where} is not base64") from None
