"""A PostgreSQL store whose database does not exist yet: the error says so and how to
create it, `loopline db upgrade --create` creates it, `loopline init` writes the URI.

Real CLI processes against the local PostgreSQL; every database made is dropped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from fixtures.stores import PG_URL, _pg_admin

LOOPLINE = str(Path(sys.executable).parent / "loopline")
SERVER = PG_URL.rsplit("/", 1)[0]  # postgresql+psycopg://postgres@127.0.0.1:5432


def run(cwd: Path, *args: str, store_uri: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["LOOPLINE_STORE_URI"] = store_uri
    env["COLUMNS"] = "300"  # one line per message, whatever the terminal
    return subprocess.run(
        [LOOPLINE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def database_exists(name: str) -> bool:
    with _pg_admin() as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def drop_database(name: str) -> None:
    from psycopg import sql

    with _pg_admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_name(postgres_available: bool) -> Iterator[str]:
    """A database name no database has yet; the database is dropped afterwards."""
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable")
    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        drop_database(name)


def uri_for(name: str, password: str | None = None) -> str:
    server = SERVER if password is None else SERVER.replace("postgres@", f"postgres:{password}@")
    return f"{server}/{quote(name, safe='')}"


def test_missing_postgres_database_names_it_and_how_to_create_it(
    db_name: str, tmp_path: Path
) -> None:
    result = run(tmp_path, "runs", "ls", store_uri=uri_for(db_name, password="s3cret"))
    assert result.returncode == 6, result.stderr
    out = result.stdout + result.stderr
    assert f"the database '{db_name}' does not exist" in out
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {db_name}" in out
    assert "loopline db upgrade --create" in out
    assert "Traceback" not in out and "s3cret" not in out
    assert not database_exists(db_name)


def test_db_upgrade_create_makes_the_database_and_is_then_a_no_op(
    db_name: str, tmp_path: Path
) -> None:
    uri = uri_for(db_name)
    first = run(tmp_path, "db", "upgrade", "--create", store_uri=uri)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Created database" in first.stdout
    assert database_exists(db_name)
    second = run(tmp_path, "db", "upgrade", "--create", store_uri=uri)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Created database" not in second.stdout
    assert "latest schema" in second.stdout
    runs = run(tmp_path, "runs", "ls", store_uri=uri)  # the store is usable
    assert runs.returncode == 0, runs.stdout + runs.stderr


def test_db_upgrade_create_on_sqlite_is_harmless(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'loopline.db'}"
    result = run(tmp_path, "db", "upgrade", "--create", store_uri=uri)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "store" / "loopline.db").is_file()


def test_init_with_store_uri_env_writes_that_uri(db_name: str, tmp_path: Path) -> None:
    uri = uri_for(db_name)
    assert run(tmp_path, "db", "upgrade", "--create", store_uri=uri).returncode == 0
    project = tmp_path / "project"
    result = run(tmp_path, "init", str(project), store_uri=uri)
    assert result.returncode == 0, result.stdout + result.stderr
    written = tomllib.loads((project / "loopline.toml").read_text())["store"]["uri"]
    assert written == uri
    assert not (project / ".loopline" / "loopline.db").exists()


def test_init_with_a_password_in_store_uri_writes_it_without_the_password(
    db_name: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    uri = uri_for(db_name, password="s3cret") + "?sslpassword=k3y&connect_timeout=5"
    result = run(tmp_path, "init", str(project), store_uri=uri)
    text = (project / "loopline.toml").read_text()
    written = tomllib.loads(text)["store"]["uri"]
    assert written == f"{uri_for(db_name)}?connect_timeout=5"
    assert "s3cret" not in text and "k3y" not in text
    out = result.stdout + result.stderr
    assert "keep LOOPLINE_STORE_URI set" in out
    # the database does not exist yet: init says so, with the way to create it
    assert result.returncode == 6 and "loopline db upgrade --create" in out
    assert "s3cret" not in out and "Traceback" not in out
