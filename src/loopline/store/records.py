"""The plain records the metadata store returns: no database handles inside."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from loopline.errors import InvalidInput

MAX_SEARCH_RESULTS = 50_000  # runs one search may return


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Direction(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class LinkKind(StrEnum):
    """What a run link points at; later areas add their objects here."""

    ARTIFACT = "artifact"
    DATASET_VERSION = "dataset_version"
    MODEL_VERSION = "model_version"
    FEATURE_VIEW = "feature_view"
    DATAFRAME = "dataframe"  # ref: a blob holding the frame's digest and profile (log_input)


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str
    created_at: datetime
    description: str | None = None
    deleted: bool = False
    run_count: int | None = None
    last_run_at: datetime | None = None  # the start of its newest run (list_experiments)


@dataclass(frozen=True)
class CodeVersion:
    """Where the code that ran came from; patch_hash addresses the uncommitted diff."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    patch_hash: str | None = None


@dataclass(frozen=True)
class Run:
    """A run with its params, latest metric values and tags."""

    id: str
    experiment_id: str
    experiment: str
    name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    parent_id: str | None
    user: str
    source: str
    error: str | None = None
    code: CodeVersion = field(default_factory=CodeVersion)
    python_version: str | None = None
    packages_hash: str | None = None
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class RunsPage:
    """One page of a run search: `runs` from position `offset` of `total` matches."""

    runs: list[Run]
    total: int
    offset: int


@dataclass(frozen=True)
class RunKeys:
    """The param, metric and tag keys runs were logged with, each sorted."""

    params: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: datetime


MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class MetricSpan:
    """Which points of a metric's history to read: those with `start <= x <= end` (each
    bound optional) where x is the step, or the timestamp in epoch ms for `x="time"`; in
    x's order; the first `limit` of them (None: all).

    With `buckets` (a chart's width in pixels), a span of more than 2 x `buckets` finite
    points is thinned by the database: the range is cut into `buckets` equal slices and
    only the point of the lowest and the point of the highest finite value of each are
    read, at their own x (NaN and infinite values left out). A chart drawn from them shows
    every spike and dip of the full history (`limit` bounds only a read that is not
    thinned).
    """

    x: Literal["step", "time"] = "step"
    start: int | None = None
    end: int | None = None
    limit: int | None = None
    buckets: int | None = None

    def __post_init__(self) -> None:
        if self.x not in ("step", "time"):
            raise InvalidInput(f"a metric's x axis is 'step' or 'time', got {self.x!r}")
        for name in ("start", "end", "limit", "buckets"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63
            ):
                raise InvalidInput(f"{name} must be a 64-bit integer, got {value!r}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {self.limit}")
        if self.buckets is not None and not 1 <= self.buckets <= MAX_BUCKETS:
            raise InvalidInput(f"buckets must be 1..{MAX_BUCKETS:,}, got {self.buckets}")


@dataclass(frozen=True)
class MetricSeries:
    """Points of one metric as columns (value NaN for a stored NaN): what a chart reads,
    100,000 points without an object per point. `timestamp` is in epoch milliseconds.

    `total` is the number of points the span holds (of which the first `limit` were
    read) and `finite` how many of them have a finite value; `thinned` says that the
    columns hold only each bucket's lowest and highest finite point (MetricSpan.buckets).
    Without `buckets`, both count the points read.
    """

    key: str
    step: list[int]
    timestamp: list[int]
    value: list[float]
    total: int = 0
    finite: int = 0
    thinned: bool = False


@dataclass(frozen=True)
class RunLink:
    """A typed lineage edge: e.g. (output, artifact, "plots/roc.png" -> blob hash)."""

    run_id: str
    direction: Direction
    kind: LinkKind
    name: str
    ref: str
    size: int | None
    created_at: datetime


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def datetime_to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def stored_float(value: float | None) -> float:
    """The metric value a stored NULL stands for (NaN, see the schema)."""
    return math.nan if value is None else value


def new_id() -> str:
    """A fresh opaque id: 32 lowercase hex characters."""
    return uuid.uuid4().hex
