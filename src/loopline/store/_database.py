"""The database a store URI names: saying clearly that it is missing, and creating it.

A PostgreSQL store needs its database to exist before loopline can create its tables;
a newcomer who writes `postgresql+psycopg://me@db/loopline` gets the server's
"database does not exist" deep in a connection error. `missing_database_error` turns
that into one line naming the database and the two ways to create it, and
`create_database` is what `loopline db upgrade --create` runs. The database name comes
from the user: it is checked, then quoted as an identifier by psycopg, never formatted
into SQL.
"""

from __future__ import annotations

import shlex

from sqlalchemy import URL, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from loopline.errors import InvalidInput, StoreUnavailable
from loopline.redact import redact_uri

# PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes): the database created
# would not be the one the URI names.
MAX_NAME_BYTES = 63
# Where to connect to run CREATE DATABASE: the usual maintenance database, then the
# template every cluster has.
_MAINTENANCE = ("postgres", "template1")


def _postgres_url(uri: str) -> URL | None:
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidInput(f"not a database URI: {redact_uri(uri)!r}") from exc
    return url if url.get_backend_name() == "postgresql" else None


def missing_database_error(uri: str, exc: BaseException, what: str) -> StoreUnavailable | None:
    """A StoreUnavailable naming the missing database and how to create it, when `exc` is
    PostgreSQL's "database ... does not exist"; else None."""
    text = str(getattr(exc, "orig", None) or exc)
    if "does not exist" not in text or 'database "' not in text:
        return None
    url = _postgres_url(uri)
    if url is None or not url.database:
        return None
    return StoreUnavailable(
        f"{what}: the database {url.database!r} does not exist on the PostgreSQL server "
        f"{url.host or 'localhost'}:{url.port or 5432} (store {redact_uri(uri)})",
        hint=f"create it with `{createdb_command(url)}` or `loopline db upgrade --create`",
    )


def createdb_command(url: URL) -> str:
    """The `createdb` command line that creates the database `url` names."""
    words = ["createdb"]
    for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
        if value is not None:
            words += [flag, str(value)]
    words.append(url.database or "")
    return " ".join(shlex.quote(word) for word in words)


def create_database(uri: str) -> bool:
    """Create the PostgreSQL database `uri` names unless it exists; True if created.

    Connects to the server's maintenance database with the same credentials. A SQLite
    URI does nothing (its file is created when the store opens) and returns False.
    Raises InvalidInput for a name PostgreSQL would change (empty, NUL, over 63 bytes),
    StoreUnavailable when the server cannot be reached or refuses (no CREATEDB right).
    """
    url = _postgres_url(uri)
    if url is None:
        return False
    name = url.database or ""
    if not name or "\x00" in name or len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"cannot create database {name!r}: PostgreSQL names are 1 to "
            f"{MAX_NAME_BYTES} bytes without NUL",
            hint="name the database in the store URI: postgresql+psycopg://user@host:5432/NAME",
        )
    failure: BaseException | None = None
    for maintenance in _MAINTENANCE:
        engine = create_engine(
            url.set(drivername="postgresql+psycopg", database=maintenance),
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # CREATE DATABASE cannot run in a transaction
        )
        try:
            with engine.connect() as conn:
                return _create(conn.connection.driver_connection, name)
        except DBAPIError as exc:  # could not connect to this maintenance database
            failure = exc
        finally:
            engine.dispose()
    raise StoreUnavailable(
        f"cannot reach the PostgreSQL server of {redact_uri(uri)} to create database "
        f"{name!r}: {_first_line(failure)}",
        hint=f"create it yourself: `{createdb_command(url)}`",
    )


def _create(connection: object, name: str) -> bool:
    import psycopg
    from psycopg import sql

    assert isinstance(connection, psycopg.Connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is not None:
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.errors.DuplicateDatabase:
        return False  # created by someone else meanwhile
    except psycopg.Error as exc:
        raise StoreUnavailable(
            f"the PostgreSQL server refused to create database {name!r}: {_first_line(exc)}",
            hint="a user with the CREATEDB right (or an administrator) must create it",
        ) from exc


def _first_line(exc: BaseException | None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
