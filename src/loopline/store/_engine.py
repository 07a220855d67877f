"""Opening a database: SQLite tuned for concurrent writers, or PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`: a deferred transaction that later upgrades to a write lock is the
usual cause of "database is locked" (the upgrade cannot wait, it fails at once). Reads
use a plain deferred `BEGIN`, so readers never queue behind writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from loopline.errors import InvalidInput, MissingExtra

BUSY_TIMEOUT_S = 60.0
_WRITE = "loopline_write"


def create_store_engine(uri: str) -> Engine:
    """An Engine for `sqlite:///path` or `postgresql+psycopg://...`."""
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidInput(f"not a database URI: {uri!r}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.get_driver_name() not in ("pysqlite", ""):
            raise InvalidInput(f"unsupported SQLite driver {url.get_driver_name()!r} in {uri!r}")
        return _sqlite_engine(uri, url.database)
    if backend == "postgresql":
        if url.get_driver_name() not in ("psycopg", ""):
            raise InvalidInput(
                f"unsupported PostgreSQL driver {url.get_driver_name()!r} in {uri!r}",
                hint="use postgresql+psycopg://user@host:5432/dbname",
            )
        try:
            return create_engine(
                url.set(drivername="postgresql+psycopg"), pool_pre_ping=True, pool_size=5
            )
        except (ImportError, NoSuchModuleError) as exc:
            raise MissingExtra("PostgreSQL stores", "postgres") from exc
    raise InvalidInput(
        f"unsupported store URI {uri!r}",
        hint="use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
    )


def _sqlite_engine(uri: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # NullPool: a connection per use keeps forked processes and threads independent; a
    # SQLite connect costs microseconds.
    engine = create_engine(
        uri,
        poolclass=NullPool,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is crash-safe in WAL mode; a power cut may lose the last commits only.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ILIKE is the other).
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement (SQLite)."""
    with engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only snapshot."""
    with engine.connect() as conn, conn.begin():
        yield conn
