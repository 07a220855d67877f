"""The prediction log's index and the feedback labels through a platform server
(`PredictionStore`'s methods). Bytes travel as base64."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from loopline.errors import InvalidInput
from loopline.store.deployments import check_deployment_name
from loopline.store.predictions import (
    FeedbackRecord,
    LogSketch,
    PredictionLogFile,
    RequestFilter,
)
from loopline.store.remote._codec import decode, encode
from loopline.store.remote._session import RemoteSession


class RemotePredictionStore:
    """`MetadataStore.predictions` of a remote store."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

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
        """Index a stored log file; False if it is indexed already. Safe to repeat (a file
        is indexed once), so a dropped connection is retried."""
        body: dict[str, Any] = {
            "hour": _time(hour, "hour"),
            "blob_hash": blob_hash,
            "rows": rows,
            "first_time": _time(first_time, "first_time"),
            "last_time": _time(last_time, "last_time"),
            "size_bytes": size_bytes,
            "request_filter": _filter(request_filter),
            "sketch": _sketch(sketch),
        }
        path = _deployment(deployment) + "/prediction-log/files"
        answer = self._session.call("POST", path, body=body, idempotent=True)
        return decode(bool, answer["indexed"])  # type: ignore[no-any-return]

    def files(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[PredictionLogFile]:
        """The indexed files of `deployment` holding records in [since, until), by time."""
        path = _deployment(deployment) + "/prediction-log/files"
        answer = self._session.call("GET", path, params=_window(since, until))
        return decode(list[PredictionLogFile], answer)  # type: ignore[no-any-return]

    def sketches(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, LogSketch]:
        """Log file blob hash -> its LogSketch, for the files in [since, until)."""
        path = _deployment(deployment) + "/prediction-log/sketches"
        answer = self._session.call("GET", path, params=_window(since, until))
        return decode(dict[str, LogSketch], answer)  # type: ignore[no-any-return]

    def files_for_request(
        self, block_hash: int, deployment: str | None = None
    ) -> list[tuple[PredictionLogFile, bytes | None]]:
        """Every indexed file (of `deployment`, or of all), by time, each with the block of
        its request filter that `block_hash` picks, or None (one request for all)."""
        if type(block_hash) is not int or not 0 <= block_hash < 2**31:
            raise InvalidInput(f"block_hash must be an integer in [0, 2**31), got {block_hash!r}")
        params: dict[str, Any] = {"block_hash": block_hash}
        if deployment is not None:
            params["deployment"] = check_deployment_name(deployment)
        answer = self._session.call("GET", "/prediction-log/request-blocks", params=params)
        found = decode(list[dict[str, Any]], answer)
        return [
            (
                decode(PredictionLogFile, item.get("file")),
                None if item.get("block") is None else _bytes(item["block"]),
            )
            for item in found
        ]

    def feedback_for_request(self, deployment: str, request_id: str) -> list[FeedbackRecord]:
        """The newest label of each row of one request of `deployment`, by row."""
        path = f"{_deployment(deployment)}/feedback/{quote(request_id, safe='')}"
        return decode(list[FeedbackRecord], self._session.call("GET", path))  # type: ignore[no-any-return]

    def add_feedback(
        self,
        deployment: str,
        items: Sequence[tuple[str, int, str]],
        *,
        time: datetime | None = None,
    ) -> int:
        """Append (request_id, row, label_json) labels in one transaction; their count.
        Not retried: a repeat would append the labels twice."""
        path = _deployment(deployment) + "/feedback"
        moment = None if time is None else _time(time, "time")
        if not items:
            return 0
        body = {"items": [list(item) for item in items], "time": moment}
        return decode(int, self._session.call("POST", path, body=body)["added"])  # type: ignore[no-any-return]

    def feedback(
        self,
        deployment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[FeedbackRecord]:
        """Labels of `deployment` recorded in [since, until), oldest first."""
        path = _deployment(deployment) + "/feedback"
        answer = self._session.call("GET", path, params=_window(since, until))
        return decode(list[FeedbackRecord], answer)  # type: ignore[no-any-return]


def _deployment(name: str) -> str:
    return f"/deployments/{quote(check_deployment_name(name), safe='')}"


def _time(moment: datetime, what: str) -> str:
    """An aware time as ISO-8601 (a naive one is refused here, as the store does)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.isoformat()


def _window(since: datetime | None, until: datetime | None) -> dict[str, str]:
    params = {}
    if since is not None:
        params["since"] = _time(since, "since")
    if until is not None:
        params["until"] = _time(until, "until")
    return params


def _filter(request_filter: RequestFilter | None) -> dict[str, Any] | None:
    if request_filter is None:
        return None
    if not isinstance(request_filter, RequestFilter):
        raise InvalidInput(f"request_filter must be a RequestFilter, got {request_filter!r}")
    bits = request_filter.bits
    if not isinstance(bits, bytes):
        raise InvalidInput(f"a request filter needs blocks >= 1 and bytes, got {bits!r:.60}")
    return {"blocks": request_filter.blocks, "bits": base64.b64encode(bits).decode("ascii")}


def _sketch(sketch: LogSketch | None) -> Any:
    if sketch is None:
        return None
    if not isinstance(sketch, LogSketch):
        raise InvalidInput(f"sketch must be a LogSketch, got {sketch!r}")
    return encode(sketch)


def _bytes(text: Any) -> bytes:
    return base64.b64decode(decode(str, text), validate=True)
