"""Applying Alembic migrations on open, exactly once however many processes start at once.

The fast path reads `alembic_version` and returns when it is already at head (Alembic
itself is only imported when there is work to do). An empty SQLite database gets the
schema of `_schema.py` at once and is stamped at head: the same tables, indexes and
constraints as running every migration (tests/unit/test_schema_equivalence.py compares
the two), in 35 ms instead of 85 (every fresh store pays it: a project's first command,
each test). On PostgreSQL the DDL itself dominates (~240 ms either way), so it migrates.
Otherwise the upgrade runs inside one write transaction that first takes the database's
write lock: `BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on
PostgreSQL. Both engines have
transactional DDL, so a process that waited on the lock sees the finished schema,
finds nothing to do, and a crash mid-upgrade leaves the old schema intact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

# SQLAlchemy is imported inside the functions: `store._quick` reads HEAD without it.

log = logging.getLogger(__name__)

HEAD = "0012"
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x100F1143  # any constant; names loopline's migration lock


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database."""
    from sqlalchemy.exc import DBAPIError

    from loopline.store._engine import read_transaction

    try:
        with read_transaction(engine) as conn:
            return _revision(conn)
    except DBAPIError:
        return None  # no alembic_version table yet


def upgrade(engine: Engine) -> bool:
    """Bring the schema to HEAD; returns True if this call applied migrations."""
    if current_revision(engine) == HEAD:
        return False
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from loopline.store._engine import write_transaction

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        if _has_version_table(conn) and _revision(conn) == HEAD:
            return False  # another process migrated while we waited for the lock
        if conn.dialect.name == "sqlite" and _empty(conn):
            _create_at_head(conn)
            return True
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        log.info("migrating the metadata store to revision %s", HEAD)
        command.upgrade(config, "head")
    return True


def _revision(conn: Connection) -> str | None:
    from sqlalchemy import text

    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _empty(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return not inspect(conn).get_table_names()


def _create_at_head(conn: Connection) -> None:
    """The current schema in an empty database, stamped at HEAD as Alembic stamps."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    from loopline.store._audit_chain import new_head_row
    from loopline.store._schema import audit_head, metadata

    log.info("creating the metadata store at revision %s", HEAD)
    metadata.create_all(conn, checkfirst=False)
    conn.execute(audit_head.insert().values(**new_head_row()))  # as migration 0010 does
    version = Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(conn, checkfirst=False)
    conn.execute(version.insert().values(version_num=HEAD))


def _has_version_table(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return inspect(conn).has_table("alembic_version")
