"""The prediction log's index and the feedback labels, in the metadata database.

Logged predictions live in Parquet files in the artifact store (loopline.predictions
writes them); each file holds one deployment's records from one UTC hour and is indexed
here by `add_file`, so `files` finds the few files that overlap a time window. Indexing
is idempotent: a file delivered twice (a process killed between indexing and cleaning
up its spool) is indexed once, by its content hash.

Feedback is ground truth sent back for a logged request: one row per (request id, row of
the request, label), appended; a later label for the same row supersedes an earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, LargeBinary, Row, cast, func, literal, select

from loopline.errors import Conflict, InvalidInput
from loopline.store._schema import (
    prediction_feedback,
    prediction_log_files,
    prediction_log_request_filters,
    prediction_log_sketches,
)
from loopline.store.deployments import check_deployment_name
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

_DIGEST = re.compile(r"[0-9a-f]{64}")
HOUR = timedelta(hours=1)
FILTER_BLOCK_BYTES = 64


@dataclass(frozen=True)
class PredictionLogFile:
    """One indexed Parquet file of logged predictions: a deployment's records from the
    UTC hour starting at `hour`, between `first_time` and `last_time` (inclusive)."""

    deployment: str
    hour: datetime
    blob_hash: str
    rows: int
    first_time: datetime
    last_time: datetime
    size_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class RequestFilter:
    """A log file's membership filter of request ids (see predictions/_request_filter.py):
    `bits` is `blocks` blocks of FILTER_BLOCK_BYTES bytes."""

    blocks: int
    bits: bytes


@dataclass(frozen=True)
class LogSketch:
    """Where a log file's sketches are (see predictions/_sketch.py): the blob `sketch_hash`,
    written in layout `format`."""

    sketch_hash: str
    format: int


@dataclass(frozen=True)
class FeedbackRecord:
    """A label recorded for row `row` of request `request_id`; `label_json` is its JSON text."""

    request_id: str
    row: int
    label_json: str
    time: datetime


class PredictionStore:
    """SQL operations on the prediction log index and feedback; reached as
    `MetadataStore.predictions`. Callers validate request ids and labels (see
    loopline.predictions); times must be timezone-aware."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the index of log files ---------------------------------------------------------

    def add_file(
        self,
        deployment: str,
        *,
        hour: datetime,
        blob_hash: str,
        rows: int,
        first_time: datetime,
        last_time: datetime,
        size_bytes: int,
        request_filter: RequestFilter | None = None,
        sketch: LogSketch | None = None,
    ) -> bool:
        """Index a stored log file (with the filter of its request ids and the blob of its
        sketches, if given), in one transaction; False (and nothing written) if it is
        indexed already.

        Raises InvalidInput for a bad deployment name or hash, `hour` not on the hour, a
        filter whose size is not `blocks` blocks, or a sketch that is not a LogSketch.
        """
        check_deployment_name(deployment)
        if not isinstance(blob_hash, str) or not _DIGEST.fullmatch(blob_hash):
            raise InvalidInput(f"not a blob hash: {blob_hash!r}")
        hour = _aware(hour, "hour")
        if hour != floor_hour(hour):
            raise InvalidInput(f"hour must be on the hour (UTC), got {hour.isoformat()}")
        _check_filter(request_filter)
        _check_sketch(sketch)
        if self._indexed(deployment, blob_hash):
            return False
        file_id = new_id()
        try:
            with self._db.write("index prediction log file") as conn:
                conn.execute(
                    prediction_log_files.insert().values(
                        id=file_id,
                        deployment=deployment,
                        hour=hour,
                        blob_hash=blob_hash,
                        rows=rows,
                        first_time=_aware(first_time, "first_time"),
                        last_time=_aware(last_time, "last_time"),
                        size_bytes=size_bytes,
                        created_at=datetime.now(UTC),
                    )
                )
                if request_filter is not None:
                    conn.execute(
                        prediction_log_request_filters.insert().values(
                            file_id=file_id,
                            blocks=request_filter.blocks,
                            bits=request_filter.bits,
                        )
                    )
                if sketch is not None:
                    conn.execute(
                        prediction_log_sketches.insert().values(
                            file_id=file_id, sketch_hash=sketch.sketch_hash, format=sketch.format
                        )
                    )
        except Conflict:
            if self._indexed(deployment, blob_hash):
                return False  # another process delivered the same file meanwhile
            raise
        return True

    def files(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[PredictionLogFile]:
        """The indexed files of `deployment` holding records in [since, until), by time."""
        check_deployment_name(deployment)
        table = prediction_log_files.c
        stmt = select(prediction_log_files).where(table.deployment == deployment)
        if since is not None:
            since = _aware(since, "since")
            # a file's records all lie within its hour: the indexed column narrows first
            stmt = stmt.where(table.hour > since - HOUR, table.last_time >= since)
        if until is not None:
            until = _aware(until, "until")
            stmt = stmt.where(table.hour < until, table.first_time < until)
        stmt = stmt.order_by(table.first_time, table.blob_hash)
        with self._db.read() as conn:
            return [_file(row) for row in conn.execute(stmt)]

    def sketches(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, LogSketch]:
        """Log file blob hash -> its LogSketch, for the files of `deployment` in [since,
        until) that have one (the same files `files` lists, less those without)."""
        check_deployment_name(deployment)
        files, sketches = prediction_log_files.c, prediction_log_sketches.c
        stmt = (
            select(files.blob_hash, sketches.sketch_hash, sketches.format)
            .select_from(
                prediction_log_files.join(prediction_log_sketches, sketches.file_id == files.id)
            )
            .where(files.deployment == deployment)
        )
        if since is not None:
            since = _aware(since, "since")
            stmt = stmt.where(files.hour > since - HOUR, files.last_time >= since)
        if until is not None:
            until = _aware(until, "until")
            stmt = stmt.where(files.hour < until, files.first_time < until)
        with self._db.read() as conn:
            return {
                str(row.blob_hash): LogSketch(str(row.sketch_hash), int(row.format))
                for row in conn.execute(stmt)
            }

    def files_for_request(
        self, block_hash: int, deployment: str | None = None
    ) -> list[tuple[PredictionLogFile, bytes | None]]:
        """Every indexed file (of `deployment`, or of all), by time, each with the one
        block of its request filter that `block_hash` picks (block_hash % blocks), or None
        for a file indexed without a filter. Moves 64 bytes per file, not the filters."""
        if deployment is not None:
            check_deployment_name(deployment)
        if type(block_hash) is not int or not 0 <= block_hash < 2**31:
            raise InvalidInput(f"block_hash must be an integer in [0, 2**31), got {block_hash!r}")
        files, filters = prediction_log_files, prediction_log_request_filters
        start = cast((literal(block_hash) % filters.c.blocks) * FILTER_BLOCK_BYTES + 1, Integer)
        block = func.substr(filters.c.bits, start, FILTER_BLOCK_BYTES, type_=LargeBinary)
        stmt = select(files, block.label("filter_block")).select_from(
            files.outerjoin(filters, filters.c.file_id == files.c.id)
        )
        if deployment is not None:
            stmt = stmt.where(files.c.deployment == deployment)
        stmt = stmt.order_by(files.c.first_time, files.c.blob_hash)
        with self._db.read() as conn:
            return [
                (_file(row), None if row.filter_block is None else bytes(row.filter_block))
                for row in conn.execute(stmt)
            ]

    def feedback_for_request(self, deployment: str, request_id: str) -> list[FeedbackRecord]:
        """The newest label of each row of one request of `deployment`, by row."""
        check_deployment_name(deployment)
        table = prediction_feedback.c
        stmt = (
            select(table.request_id, table.row, table.label_json, table.time)
            .where(table.deployment == deployment, table.request_id == request_id)
            .order_by(table.row, table.seq.desc())
        )
        newest: dict[int, FeedbackRecord] = {}
        with self._db.read() as conn:
            for row in conn.execute(stmt):
                if int(row.row) not in newest:
                    newest[int(row.row)] = FeedbackRecord(
                        request_id=str(row.request_id),
                        row=int(row.row),
                        label_json=str(row.label_json),
                        time=_utc(row.time),
                    )
        return list(newest.values())

    def _indexed(self, deployment: str, blob_hash: str) -> bool:
        table = prediction_log_files.c
        with self._db.read() as conn:
            found = conn.execute(
                select(table.id).where(table.deployment == deployment, table.blob_hash == blob_hash)
            )
            return found.first() is not None

    # -- feedback -----------------------------------------------------------------------

    def add_feedback(
        self,
        deployment: str,
        items: Sequence[tuple[str, int, str]],
        *,
        time: datetime | None = None,
    ) -> int:
        """Append (request_id, row, label_json) labels in one transaction; their count."""
        check_deployment_name(deployment)
        moment = _aware(time, "time") if time is not None else datetime.now(UTC)
        rows = [
            {
                "deployment": deployment,
                "request_id": request_id,
                "row": row,
                "label_json": label_json,
                "time": moment,
            }
            for request_id, row, label_json in items
        ]
        if not rows:
            return 0
        with self._db.write("record feedback") as conn:
            conn.execute(prediction_feedback.insert(), rows)
        return len(rows)

    def feedback(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[FeedbackRecord]:
        """Labels of `deployment` recorded in [since, until), oldest first; of several
        labels for one (request_id, row) in the window, only the newest."""
        check_deployment_name(deployment)
        table = prediction_feedback.c
        newest = (
            func.row_number()
            .over(partition_by=(table.request_id, table.row), order_by=table.seq.desc())
            .label("newest")
        )
        inner = select(
            table.seq, table.request_id, table.row, table.label_json, table.time, newest
        ).where(table.deployment == deployment)
        if since is not None:
            inner = inner.where(table.time >= _aware(since, "since"))
        if until is not None:
            inner = inner.where(table.time < _aware(until, "until"))
        ranked = inner.subquery()
        stmt = (
            select(ranked.c.request_id, ranked.c.row, ranked.c.label_json, ranked.c.time)
            .where(ranked.c.newest == 1)
            .order_by(ranked.c.time, ranked.c.seq)
        )
        with self._db.read() as conn:
            return [
                FeedbackRecord(
                    request_id=str(row.request_id),
                    row=int(row.row),
                    label_json=str(row.label_json),
                    time=_utc(row.time),
                )
                for row in conn.execute(stmt)
            ]


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (aware)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _check_filter(request_filter: RequestFilter | None) -> None:
    if request_filter is None:
        return
    if not isinstance(request_filter, RequestFilter):
        raise InvalidInput(f"request_filter must be a RequestFilter, got {request_filter!r}")
    blocks, bits = request_filter.blocks, request_filter.bits
    if type(blocks) is not int or blocks < 1 or not isinstance(bits, bytes):
        raise InvalidInput(f"a request filter needs blocks >= 1 and bytes, got {blocks!r}")
    if len(bits) != blocks * FILTER_BLOCK_BYTES:
        raise InvalidInput(
            f"a request filter of {blocks} blocks holds {blocks * FILTER_BLOCK_BYTES} bytes, "
            f"got {len(bits)}"
        )


def _check_sketch(sketch: LogSketch | None) -> None:
    if sketch is None:
        return
    if not isinstance(sketch, LogSketch):
        raise InvalidInput(f"sketch must be a LogSketch, got {sketch!r}")
    if not isinstance(sketch.sketch_hash, str) or not _DIGEST.fullmatch(sketch.sketch_hash):
        raise InvalidInput(f"not a blob hash: {sketch.sketch_hash!r}")
    if type(sketch.format) is not int or sketch.format < 1:
        raise InvalidInput(f"a sketch format is an integer >= 1, got {sketch.format!r}")


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _utc(value: Any) -> datetime:
    # the subquery's column loses the UTCDateTime type on SQLite: parse text if need be
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _file(row: Row[Any]) -> PredictionLogFile:
    return PredictionLogFile(
        deployment=str(row.deployment),
        hour=row.hour,
        blob_hash=str(row.blob_hash),
        rows=int(row.rows),
        first_time=row.first_time,
        last_time=row.last_time,
        size_bytes=int(row.size_bytes),
        created_at=row.created_at,
    )
