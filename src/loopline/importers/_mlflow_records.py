"""What an MLflow store holds, as the importer reads it from a database or a server.

Both readers (`_mlflow_db` over MLflow's SQL schema, `_mlflow_rest` over its REST API)
return these records, so the import itself does not know where they came from.
Times are epoch milliseconds, as MLflow keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SourceExperiment:
    id: str
    name: str
    lifecycle_stage: str = "active"


@dataclass(frozen=True)
class SourceRun:
    id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int
    end_time: int | None
    user: str
    lifecycle_stage: str  # active or deleted
    artifact_uri: str
    deleted_time: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # what changes when the source run changes (metric counts, last times, status...):
    # equal fingerprints mean the run needs no update
    fingerprint: str = ""


@dataclass(frozen=True)
class SourceModelVersion:
    name: str
    version: int
    creation_time: int | None
    description: str | None
    user: str
    source: str  # runs:/<id>/model, models:/m-..., or a storage URI
    run_id: str | None
    storage_location: str | None  # where the files are (MLflow >= 2.9)
    stage: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceModel:
    name: str
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version number
    versions: list[SourceModelVersion]


Series = list[tuple[float, int, int]]  # (value, step, timestamp)


class MlflowSource(Protocol):
    """An MLflow store opened for reading; `close()` releases it."""

    uri: str  # as shown to the user: no password

    def experiments(self) -> list[SourceExperiment]: ...

    def runs(self, experiment: SourceExperiment) -> list[SourceRun]: ...

    def metric_history(self, run: SourceRun) -> dict[str, Series]: ...

    def download_artifacts(self, run: SourceRun, dest: Path) -> Iterator[tuple[str, Path]]:
        """(relative path, local file) of every artifact of the run, fetched into `dest`."""
        ...

    def download_model(self, version: SourceModelVersion, dest: Path) -> Path:
        """The model version's folder (MLmodel and its files), fetched under `dest`."""
        ...

    def models(self) -> list[SourceModel]: ...

    def close(self) -> None: ...
