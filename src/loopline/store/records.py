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


@dataclass(frozen=True)
class MetricSpan:
    """Which points of a metric's history to read: those with `start <= x <= end` (each
    bound optional) where x is the step, or the timestamp in epoch ms for `x="time"`; in
    x's order; the first `limit` of them (None: all)."""

    x: Literal["step", "time"] = "step"
    start: int | None = None
    end: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.x not in ("step", "time"):
            raise InvalidInput(f"a metric's x axis is 'step' or 'time', got {self.x!r}")
        for name in ("start", "end", "limit"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63
            ):
                raise InvalidInput(f"{name} must be a 64-bit integer, got {value!r}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class MetricSeries:
    """Points of one metric as columns (value NaN for a stored NaN): what a chart reads,
    100,000 points without an object per point. `timestamp` is in epoch milliseconds."""

    key: str
    step: list[int]
    timestamp: list[int]
    value: list[float]


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
