"""The database handle every metadata sub-store is built on.

One `Database` per opened store: the engine, read and write transactions that turn
driver errors into loopline errors, and the get-or-create of named rows (datasets,
registered models) that is safe when two processes create the same name at once. The
runs store and each area's store (datasets, models, deployments, ...) take this handle;
none of them reaches into another store's privates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, PendingRollbackError

from loopline.errors import Conflict, StoreUnavailable
from loopline.redact import redact_uri
from loopline.store._audit_chain import chained_at_commit
from loopline.store._database import missing_database_error
from loopline.store._engine import create_store_engine, read_transaction, write_transaction
from loopline.store._migrate import upgrade
from loopline.store.records import new_id


class Database:
    """An opened metadata database (SQLite or PostgreSQL), with its transactions."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.engine: Engine = create_store_engine(uri)

    def upgrade(self) -> None:
        """Bring the schema to the current revision (a no-op when it is already there)."""
        with self.guard("open"):
            upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self, what: str) -> Iterator[Connection]:
        """A write transaction; `what` names the operation in the errors it raises. Audit
        events recorded in it join the audit chain as it commits (store/_audit_chain.py)."""
        with self.guard(what), write_transaction(self.engine) as conn, chained_at_commit(conn):
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot."""
        with self.guard("read"), read_transaction(self.engine) as conn:
            yield conn

    def named_id(self, table: Table, name: str) -> str | None:
        """The id of the row of `table` (datasets, registered_models) called `name`."""
        with self.read() as conn:
            row = conn.execute(select(table.c.id).where(table.c.name == name)).first()
        return None if row is None else str(row.id)

    def get_or_create_named(
        self,
        table: Table,
        name: str,
        values: Mapping[str, object],
        *,
        what: str,
        on_insert: Callable[[Connection], object] | None = None,
    ) -> str:
        """The id of the row called `name`, inserted with `values` on first use (safe under
        concurrency: a writer that loses the race reads the winner's row); `on_insert`
        runs in the inserting transaction (e.g. an audit event)."""
        found = self.named_id(table, name)
        if found is not None:
            return found
        try:
            with self.write(what) as conn:
                conn.execute(table.insert().values(id=new_id(), name=name, **values))
                if on_insert is not None:
                    on_insert(conn)
        except Conflict:
            pass  # created concurrently
        found = self.named_id(table, name)
        assert found is not None
        return found

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Translate driver errors into loopline errors at the boundary."""
        try:
            yield
        except IntegrityError as exc:
            raise Conflict(
                f"{what}: the write conflicts with stored data ({_first_line(exc)})"
            ) from exc
        except OperationalError as exc:
            missing = missing_database_error(self.uri, exc, what)
            if missing is not None:
                raise missing from exc
            raise StoreUnavailable(
                f"{what}: the metadata store at {redact_uri(self.uri)} "
                f"is unavailable: {_first_line(exc)}"
            ) from exc
        except DBAPIError as exc:
            raise StoreUnavailable(f"{what}: database error: {_first_line(exc)}") from exc
        except PendingRollbackError as exc:  # a use of a connection the database dropped
            raise StoreUnavailable(
                f"{what}: the connection to the metadata store at {redact_uri(self.uri)} "
                "was lost mid-transaction"
            ) from exc


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
