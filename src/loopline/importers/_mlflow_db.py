"""Reading an MLflow tracking database (SQLite or PostgreSQL) with SQLAlchemy alone.

No `mlflow` package is needed: the tables are read as MLflow's migrations left them.
Handled: schema revisions from `2b4d017a5e9b` (the model registry, MLflow 1.9) to
`f4a9b2c7d1e6` (MLflow 3.18); tables and columns that came later (aliases, model version
tags, storage locations, workspaces) are used when present. Any other revision is
refused, naming it: a newer MLflow may have moved what this reader relies on.
With workspaces (MLflow >= 3.10), the `default` workspace is read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import MetaData, Table, create_engine, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from loopline.errors import InvalidInput, NotFound, StoreUnavailable
from loopline.importers import _mlflow_files
from loopline.importers._mlflow_records import (
    Series,
    SourceExperiment,
    SourceModel,
    SourceModelVersion,
    SourceRun,
)
from loopline.redact import redact_text

# MLflow's migration chain, oldest first, from the first revision with the model registry.
KNOWN_REVISIONS = [
    "2b4d017a5e9b",
    "cfd24bdc0731",
    "0a8213491aaa",
    "728d730b5ebd",
    "27a6a02d2cf1",
    "84291f40a231",
    "a8c4a736bde6",
    "39d1c3be5f05",
    "c48cb773bb87",
    "bd07f7e963c5",
    "0c779009ac13",
    "cc1f77228345",
    "97727af70f4d",
    "3500859a5d39",
    "7f2a7d5fae7d",
    "2d6e25af4d3e",
    "acf3f17fdcc7",
    "867495a8f9d4",
    "5b0e9adcef9c",
    "4465047574b1",
    "f5a4f2784254",
    "0584bdc529eb",
    "400f98739977",
    "6953534de441",
    "bda7b8c39065",
    "cbc13b556ace",
    "770bee3ae1dd",
    "a1b2c3d4e5f6",
    "de4033877273",
    "1a0cddfcaa16",
    "534353b11cbc",
    "71994744cf8e",
    "3da73c924c2f",
    "bf29a5ff90ea",
    "1bd49d398cd23",
    "b7c8d9e0f1a2",
    "5d2d30f0abce",
    "c9d4e5f6a7b8",
    "2c33131f4dae",
    "d3e4f5a6b7c8",
    "d0e1f2a3b4c5",
    "c8d9e0f1a2b3",
    "1b5f0d9ad7c1",
    "e1f2a3b4c5d6",
    "76601a5f987d",
    "c3d6457b6d8a",
    "a5b4c3d2e1f0",
    "ae8bbe7743c9",
    "7d34483879f0",
    "da6fb0208061",
    "89d3d66ed43f",
    "b7e4c1a90f23",
    "a8b9c0d1e2f3",
    "c1d2e3f4a5b6",
    "c3d9e7f1a2b4",
    "6f8d9c3b2a1e",
    "1971f2d9a75b",
    "17e22815139b",
    "b7e2c1a4d9f3",
    "75868b020152",
    "dc11669786a5",
    "e7d1f4b2a9c6",
    "8b6ad64cb8f5",
    "f4a9b2c7d1e6",
]
_REQUIRED = ("experiments", "runs", "metrics", "params", "tags")
_OPTIONAL = (
    "registered_models",
    "model_versions",
    "registered_model_tags",
    "model_version_tags",
    "registered_model_aliases",
    "logged_models",
)


def database_url(uri: str) -> str:
    """The SQLAlchemy URL for `uri`: psycopg 3 for PostgreSQL (loopline's driver)."""
    scheme, _, rest = uri.partition("://")
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return "postgresql+psycopg://" + rest  # MLflow's psycopg2 URLs work unchanged
    if uri.startswith("sqlite:///"):
        return uri
    raise InvalidInput(
        f"cannot import from {redact_text(uri)!r}",
        hint="give sqlite:///mlflow.db, postgresql://... or the http(s):// URL of a server",
    )


class MlflowDatabase:
    """An MLflow tracking database opened read-only."""

    def __init__(self, uri: str) -> None:
        self.uri = redact_text(uri)
        url = database_url(uri)
        self._base: Path | None = None
        if url.startswith("sqlite:///"):
            path = Path(make_url(url).database or "")
            if not path.is_file():  # SQLAlchemy would create an empty database
                raise NotFound(f"no MLflow database at {str(path)!r}")
            self._base = path.resolve().parent  # relative artifact paths start here
            url = f"sqlite:///file:{path}?mode=ro&uri=true"
        try:
            self._engine: Engine = create_engine(url)
            self._tables = self._open()
        except (ArgumentError, NoSuchModuleError) as exc:
            raise InvalidInput(f"cannot open {self.uri!r}: {exc}") from exc
        except DBAPIError as exc:
            raise StoreUnavailable(f"cannot read {self.uri!r}: {_first_line(exc)}") from exc
        self._workspace = "workspace" in self._tables["experiments"].c

    def _open(self) -> dict[str, Table]:
        meta = MetaData()
        meta.reflect(
            self._engine,
            only=lambda name, _meta: name in (*_REQUIRED, *_OPTIONAL, "alembic_version"),
        )
        if "alembic_version" not in meta.tables or any(t not in meta.tables for t in _REQUIRED):
            raise InvalidInput(f"{self.uri!r} is not an MLflow tracking database")
        with self._engine.connect() as conn:
            revision = conn.execute(select(meta.tables["alembic_version"].c.version_num)).scalar()
        if revision not in KNOWN_REVISIONS:
            raise InvalidInput(
                f"{self.uri!r} has MLflow schema revision {revision!r}, which loopline does "
                f"not know (it reads {KNOWN_REVISIONS[0]} to {KNOWN_REVISIONS[-1]}, "
                "MLflow 1.9 to 3.18)",
                hint="`mlflow db upgrade` an older store; a newer one needs a newer loopline",
            )
        return dict(meta.tables)

    def close(self) -> None:
        self._engine.dispose()

    # -- experiments and runs --------------------------------------------------------

    def experiments(self) -> list[SourceExperiment]:
        table = self._tables["experiments"]
        stmt = self._in_workspace(select(table), table).order_by(table.c.experiment_id)
        return [
            SourceExperiment(str(row.experiment_id), row.name, row.lifecycle_stage or "active")
            for row in self._rows(stmt)
        ]

    def runs(self, experiment: SourceExperiment) -> list[SourceRun]:
        """The experiment's runs with params and tags, oldest first (parents first)."""
        runs = self._tables["runs"]
        ids = select(runs.c.run_uuid).where(runs.c.experiment_id == int(experiment.id))
        params = self._pairs("params", ids)
        tags = self._pairs("tags", ids)
        metrics = self._tables["metrics"]
        summary: dict[str, list[Any]] = {}
        stmt = (
            select(
                metrics.c.run_uuid,
                metrics.c.key,
                func.count(),
                func.max(metrics.c.timestamp),
                func.max(metrics.c.step),
            )
            .where(metrics.c.run_uuid.in_(ids))
            .group_by(metrics.c.run_uuid, metrics.c.key)
        )
        for run_id, *counts in self._rows(stmt):
            summary.setdefault(run_id, []).append(counts)
        found = []
        for row in self._rows(select(runs).where(runs.c.experiment_id == int(experiment.id))):
            run = SourceRun(
                id=row.run_uuid,
                experiment_id=experiment.id,
                name=row.name or "",
                status=row.status or "FINISHED",
                start_time=row.start_time or 0,
                end_time=row.end_time,
                user=row.user_id or "",
                lifecycle_stage=row.lifecycle_stage or "active",
                artifact_uri=row.artifact_uri or "",
                deleted_time=getattr(row, "deleted_time", None),
                params=params.get(row.run_uuid, {}),
                tags=tags.get(row.run_uuid, {}),
            )
            found.append(_with_fingerprint(run, sorted(summary.get(run.id, [])), self._base))
        return sorted(found, key=lambda r: (r.start_time, r.id))

    def metric_history(self, run: SourceRun) -> dict[str, Series]:
        metrics = self._tables["metrics"]
        columns = [metrics.c.key, metrics.c.value, metrics.c.step, metrics.c.timestamp]
        has_nan = "is_nan" in metrics.c
        if has_nan:
            columns.append(metrics.c.is_nan)
        history: dict[str, Series] = {}
        for row in self._rows(select(*columns).where(metrics.c.run_uuid == run.id)):
            value = math.nan if (has_nan and row[4]) or row[1] is None else float(row[1])
            history.setdefault(row[0], []).append((value, int(row[2] or 0), int(row[3])))
        return history

    def download_artifacts(self, run: SourceRun, dest: Path) -> Iterator[tuple[str, Path]]:
        """The run's artifact files where they are: no copy for a local folder."""
        folder = _mlflow_files.local_folder(run.artifact_uri, self._base)
        if folder is None:
            raise NotFound(
                f"the artifacts of run {run.id} are at {run.artifact_uri!r}, which a database "
                "import cannot read",
                hint="import from the tracking server's http(s):// URL to copy them",
            )
        yield from _mlflow_files.files_under(folder)

    # -- registered models ----------------------------------------------------------

    def models(self) -> list[SourceModel]:
        if "registered_models" not in self._tables or "model_versions" not in self._tables:
            return []
        models = self._tables["registered_models"]
        found = []
        for row in self._rows(self._in_workspace(select(models), models).order_by(models.c.name)):
            found.append(
                SourceModel(
                    name=row.name,
                    description=row.description,
                    tags=self._model_pairs("registered_model_tags", row.name),
                    aliases=self._aliases(row.name),
                    versions=self._versions(row.name),
                )
            )
        return found

    def _versions(self, name: str) -> list[SourceModelVersion]:
        table = self._tables["model_versions"]
        stmt = self._in_workspace(select(table), table).where(table.c.name == name)
        versions = []
        for row in self._rows(stmt.order_by(table.c.version)):
            if (row.status or "READY") != "READY":
                continue  # a failed or pending registration has no files to copy
            versions.append(
                SourceModelVersion(
                    name=name,
                    version=int(row.version),
                    creation_time=row.creation_time,
                    description=row.description,
                    user=row.user_id or "",
                    source=row.source or "",
                    run_id=row.run_id,
                    storage_location=getattr(row, "storage_location", None),
                    stage=row.current_stage,
                    tags=self._model_pairs("model_version_tags", name, int(row.version)),
                )
            )
        return versions

    def download_model(self, version: SourceModelVersion, dest: Path) -> Path:
        """The version's local folder, where MLflow keeps it (no copy)."""
        location = version.storage_location or self._source_location(version)
        folder = None if location is None else _mlflow_files.local_folder(location, self._base)
        if folder is None or not folder.is_dir():
            raise NotFound(
                f"the files of model {version.name} version {version.version} "
                f"are not on this machine ({location or version.source!r})"
            )
        return folder

    def _source_location(self, version: SourceModelVersion) -> str | None:
        source = version.source
        if source.startswith("runs:/"):
            run_id, _, path = source[len("runs:/") :].partition("/")
            runs = self._tables["runs"]
            rows = self._rows(select(runs.c.artifact_uri).where(runs.c.run_uuid == run_id))
            return None if not rows or not rows[0][0] else f"{rows[0][0]}/{path}"
        if source.startswith("models:/m-") and "logged_models" in self._tables:
            table = self._tables["logged_models"]
            stmt = select(table.c.artifact_location).where(
                table.c.model_id == source[len("models:/") :]
            )
            rows = self._rows(stmt)
            return str(rows[0][0]) if rows else None
        return source or None

    # -- plumbing -------------------------------------------------------------------

    def _pairs(self, name: str, run_ids: Any) -> dict[str, dict[str, str]]:
        table = self._tables[name]
        found: dict[str, dict[str, str]] = {}
        stmt = select(table.c.run_uuid, table.c.key, table.c.value).where(
            table.c.run_uuid.in_(run_ids)
        )
        for run_id, key, value in self._rows(stmt):
            found.setdefault(run_id, {})[key] = value if value is not None else ""
        return found

    def _model_pairs(self, name: str, model: str, version: int | None = None) -> dict[str, str]:
        table = self._tables.get(name)
        if table is None:
            return {}
        stmt = self._in_workspace(select(table.c.key, table.c.value), table).where(
            table.c.name == model
        )
        if version is not None:
            stmt = stmt.where(table.c.version == version)
        return {key: value or "" for key, value in self._rows(stmt)}

    def _aliases(self, model: str) -> dict[str, int]:
        table = self._tables.get("registered_model_aliases")
        if table is None:
            return {}
        stmt = self._in_workspace(select(table.c.alias, table.c.version), table)
        return {alias: int(v) for alias, v in self._rows(stmt.where(table.c.name == model))}

    def _in_workspace(self, stmt: Any, table: Table) -> Any:
        if self._workspace and "workspace" in table.c:
            return stmt.where(table.c.workspace == "default")
        return stmt

    def _rows(self, stmt: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(stmt))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"reading {self.uri!r} failed: {_first_line(exc)}") from exc


def _with_fingerprint(run: SourceRun, metrics: list[Any], base: Path | None) -> SourceRun:
    """`run` with a digest of everything an import copies (artifacts: their listing)."""
    try:
        folder = _mlflow_files.local_folder(run.artifact_uri, base)
        files = [] if folder is None else _mlflow_files.listing(folder)
    except Exception:  # refused later, when the run is imported, with the reason
        files = [("?", 0, 0)]
    content = [
        run.name, run.status, run.start_time, run.end_time, run.user, run.lifecycle_stage,
        run.deleted_time, sorted(run.params.items()), sorted(run.tags.items()),
        [list(m) for m in metrics], files,
    ]  # fmt: skip
    digest = hashlib.blake2b(json.dumps(content, default=str).encode(), digest_size=16)
    return SourceRun(**{**run.__dict__, "fingerprint": digest.hexdigest()})


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact_text(text[0] if text else type(exc).__name__)


def is_database_uri(uri: str) -> bool:
    return urlsplit(uri).scheme.split("+")[0] in ("sqlite", "postgresql", "postgres")
