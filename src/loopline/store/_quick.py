"""One read answered without SQLAlchemy: a dataset's latest version, on a SQLite store.

`loopline data add` of an unchanged folder needs a single fact from the database (the
manifest hash of the dataset's latest version) after work that takes ~0.2 s; importing
SQLAlchemy and opening an engine took as long again. This module asks SQLite directly,
read-only, and answers only when it can do so exactly as `DatasetStore` would: a SQLite
file at the schema revision this code expects (`_migrate.HEAD`). Anything else (another
back-end, a URI with options, a schema to migrate, any SQLite error) returns None, and
the caller takes the usual path through `MetadataStore`, which migrates first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from loopline.store._migrate import HEAD
from loopline.store.dataset_records import DatasetVersion

_PREFIX = "sqlite:///"
_LATEST = (
    "SELECT v.id, d.name, v.version, v.manifest_hash, v.message, v.author, v.created_at,"
    " v.file_count, v.total_size, v.row_count, v.schema_json, v.profile_hash, v.source"
    " FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
    " WHERE d.name = ? ORDER BY v.version DESC LIMIT 1"
)


class Unanswered(Exception):
    """This read cannot answer as the metadata store would; ask the metadata store."""


def quick_latest_version(store_uri: str, name: str) -> DatasetVersion | None:
    """The latest version of dataset `name`, read with sqlite3 (no SQLAlchemy, no engine).

    None when this cannot tell: the dataset has no version, or the store is not a plain
    SQLite file at schema revision HEAD. The caller then asks `MetadataStore.datasets`.
    """
    try:
        return _latest(sqlite_path(store_uri), name)
    except Unanswered:
        return None


def _latest(path: Path, name: str) -> DatasetVersion | None:
    with read_only(path) as db:
        row = db.execute(_LATEST, (name,)).fetchone()
    return None if row is None else _version(row)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction, on a database at HEAD.

    Every read in the block sees the same snapshot as the revision check; any SQLite
    error, there or in the block, becomes Unanswered.
    """
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise Unanswered(str(exc)) from exc
    try:
        db.execute("BEGIN")
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != HEAD:
            raise Unanswered(f"schema revision {revision!r}, expected {HEAD}")
        yield db
    except sqlite3.Error as exc:
        raise Unanswered(str(exc)) from exc
    finally:
        db.close()


def sqlite_path(store_uri: str) -> Path:
    """The file of a plain `sqlite:///` URI; Unanswered for anything else."""
    database = store_uri.removeprefix(_PREFIX)
    # Options, escapes or an in-memory database: leave the URI to SQLAlchemy's parser.
    if database == store_uri or not database or any(c in database for c in "?%#"):
        raise Unanswered(f"not a plain SQLite file URI: {store_uri!r}")
    if database == ":memory:":
        raise Unanswered("an in-memory database")
    path = Path(database)
    if not path.is_absolute() or not path.is_file():
        raise Unanswered(f"no SQLite file at {database!r}")
    return path


def _version(row: tuple[object, ...]) -> DatasetVersion:
    (id_, dataset, version, manifest_hash, message, author, created_at) = row[:7]
    (file_count, total_size, row_count, schema_json, profile_hash, source) = row[7:]
    if not isinstance(created_at, str):
        raise Unanswered(f"unexpected created_at {created_at!r}")
    return DatasetVersion(
        id=str(id_),
        dataset=str(dataset),
        version=as_int(version),
        manifest_hash=str(manifest_hash),
        message=as_text(message),
        author=str(author),
        created_at=_utc(created_at),
        file_count=as_int(file_count),
        total_size=as_int(total_size),
        row_count=None if row_count is None else as_int(row_count),
        schema_json=as_text(schema_json),
        profile_hash=as_text(profile_hash),
        source=as_text(source),
    )


def _utc(value: str) -> datetime:
    """As `_schema.UTCDateTime` reads a SQLite timestamp: naive text means UTC."""
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def as_int(value: object) -> int:
    """A column's integer as SQLite gave it; Unanswered for anything else."""
    if not isinstance(value, int):
        raise Unanswered(f"unexpected integer column {value!r}")
    return value


def as_text(value: object) -> str | None:
    return None if value is None else str(value)
