"""Datasets and their immutable versions in the metadata database.

A version's content (its manifest of paths -> content ids) lives in the artifact store;
this table records which manifest each version number names, with who, when, why,
size, rows, schema and the profile's blob.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, func, select

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.store._schema import dataset_versions, datasets, validation_results
from loopline.store.dataset_records import (
    Dataset,
    DatasetVersion,
    ValidationRecord,
    check_dataset_name,
)
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

_ATTEMPTS = 5  # concurrent adds race for the next version number; the loser retries


class DatasetStore:
    """SQL operations on datasets; reached as `MetadataStore.datasets`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_version(
        self,
        name: str,
        *,
        manifest_hash: str,
        author: str,
        file_count: int,
        total_size: int,
        message: str | None = None,
        row_count: int | None = None,
        schema_json: str | None = None,
        profile_hash: str | None = None,
        source: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Record a new version unless the latest one has the same manifest.

        Returns (version, created). Two concurrent adds get consecutive numbers.
        """
        check_dataset_name(name)
        dataset_id = self._get_or_create(name)
        for _attempt in range(_ATTEMPTS):
            try:
                with self._db.write("add dataset version") as conn:
                    latest = conn.execute(
                        select(dataset_versions.c.version, dataset_versions.c.manifest_hash)
                        .where(dataset_versions.c.dataset_id == dataset_id)
                        .order_by(dataset_versions.c.version.desc())
                        .limit(1)
                    ).first()
                    if latest is not None and latest.manifest_hash == manifest_hash:
                        unchanged: int | None = latest.version
                    else:
                        unchanged = None
                        number = 1 if latest is None else latest.version + 1
                    if unchanged is None:
                        conn.execute(
                            dataset_versions.insert().values(
                                id=new_id(),
                                dataset_id=dataset_id,
                                version=number,
                                manifest_hash=manifest_hash,
                                message=message,
                                author=author,
                                created_at=datetime.now(UTC),
                                file_count=file_count,
                                total_size=total_size,
                                row_count=row_count,
                                schema_json=schema_json,
                                profile_hash=profile_hash,
                                source=source,
                            )
                        )
                if unchanged is not None:
                    return self.get_version(name, unchanged), False
                return self.get_version(name, number), True
            except Conflict:
                continue  # another writer took this number first (PostgreSQL); try the next
        raise Conflict(f"could not add a version of {name!r}: too many concurrent writers")

    def list_datasets(self) -> list[Dataset]:
        latest = (
            select(dataset_versions.c.dataset_id, func.max(dataset_versions.c.version).label("v"))
            .group_by(dataset_versions.c.dataset_id)
            .subquery()
        )
        stmt = (
            select(datasets, latest.c.v)
            .outerjoin(latest, latest.c.dataset_id == datasets.c.id)
            .order_by(datasets.c.name)
        )
        with self._db.read() as conn:
            return [
                Dataset(row.id, row.name, row.created_at, row.description, row.v)
                for row in conn.execute(stmt)
            ]

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of `name`, newest first."""
        stmt = self._versions(name).order_by(dataset_versions.c.version.desc())
        with self._db.read() as conn:
            return [_version(row) for row in conn.execute(stmt)]

    def get_version(self, name: str, version: int) -> DatasetVersion:
        stmt = self._versions(name).where(dataset_versions.c.version == version)
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise self._no_version(name, f"no version {version}")
        return _version(row)

    def latest_version(self, name: str) -> DatasetVersion:
        row = self._latest_row(name)
        if row is None:
            raise self._no_version(name, "no versions")
        return _version(row)

    def find_by_hash_prefix(self, name: str, prefix: str) -> DatasetVersion:
        """The version of `name` whose manifest hash starts with `prefix` (>= 4 hex)."""
        if not re.fullmatch(r"[0-9a-f]{4,64}", prefix):
            raise InvalidInput(f"{prefix!r} is not a version number, 'latest' or a hash prefix")
        stmt = self._versions(name).where(dataset_versions.c.manifest_hash.like(prefix + "%"))
        with self._db.read() as conn:
            rows = list(conn.execute(stmt.limit(2)))
        if not rows:
            raise self._no_version(name, f"no version with hash {prefix}...")
        if len(rows) > 1:
            raise Conflict(f"hash prefix {prefix!r} of dataset {name!r} is ambiguous")
        return _version(rows[0])

    def get_version_by_id(self, version_id: str) -> DatasetVersion:
        stmt = _joined().where(dataset_versions.c.id == version_id)
        with self._db.read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no dataset version with id {version_id!r}")
        return _version(row)

    def versions_with_manifest(self, manifest_hash: str) -> list[DatasetVersion]:
        stmt = _joined().where(dataset_versions.c.manifest_hash == manifest_hash)
        with self._db.read() as conn:
            return [_version(row) for row in conn.execute(stmt)]

    def add_validation(
        self,
        version_id: str,
        *,
        suite_name: str,
        suite_hash: str,
        success: bool,
        failed: int,
        result_hash: str,
    ) -> ValidationRecord:
        record = ValidationRecord(
            new_id(),
            version_id,
            suite_name,
            suite_hash,
            success,
            failed,
            result_hash,
            datetime.now(UTC),
        )
        with self._db.write("store validation result") as conn:
            conn.execute(
                validation_results.insert().values(
                    id=record.id,
                    version_id=version_id,
                    suite_name=suite_name,
                    suite_hash=suite_hash,
                    success=success,
                    failed=failed,
                    result_hash=result_hash,
                    created_at=record.created_at,
                )
            )
        return record

    def list_validations(self, version_id: str) -> list[ValidationRecord]:
        stmt = (
            select(validation_results)
            .where(validation_results.c.version_id == version_id)
            .order_by(validation_results.c.created_at.desc())
        )
        with self._db.read() as conn:
            return [
                ValidationRecord(
                    r.id,
                    r.version_id,
                    r.suite_name,
                    r.suite_hash,
                    r.success,
                    r.failed,
                    r.result_hash,
                    r.created_at,
                )
                for r in conn.execute(stmt)
            ]

    def _get_or_create(self, name: str) -> str:
        return self._db.get_or_create_named(
            datasets, name, {"created_at": datetime.now(UTC)}, what="create dataset"
        )

    def _dataset_id(self, name: str) -> str | None:
        return self._db.named_id(datasets, name)

    def _versions(self, name: str) -> Any:
        check_dataset_name(name)
        if self._dataset_id(name) is None:
            raise NotFound(f"no dataset named {name!r}", hint="`loopline data ls` lists them")
        return _joined().where(datasets.c.name == name)

    def _latest_row(self, name: str) -> Row[Any] | None:
        versions = self._versions(name).order_by(dataset_versions.c.version.desc()).limit(1)
        with self._db.read() as conn:
            row: Row[Any] | None = conn.execute(versions).first()
        return row

    def _no_version(self, name: str, what: str) -> NotFound:
        row = self._latest_row(name)
        latest = f"latest is {row.version}" if row is not None else "it has no versions"
        return NotFound(f"dataset {name!r} has {what}; {latest}")


def _joined() -> Any:
    """Versions with their dataset's name: the base of every version query."""
    return select(dataset_versions, datasets.c.name.label("dataset_name")).join(
        datasets, datasets.c.id == dataset_versions.c.dataset_id
    )


def _version(row: Row[Any]) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        dataset=row.dataset_name,
        version=row.version,
        manifest_hash=row.manifest_hash,
        message=row.message,
        author=row.author,
        created_at=row.created_at,
        file_count=row.file_count,
        total_size=row.total_size,
        row_count=row.row_count,
        schema_json=row.schema_json,
        profile_hash=row.profile_hash,
        source=row.source,
    )


__all__ = [
    "Dataset",
    "DatasetStore",
    "DatasetVersion",
    "ValidationRecord",
    "check_dataset_name",
]
