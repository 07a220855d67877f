"""A store URI's database name comes from the user: `loopline db upgrade --create`
creates exactly that name (quoted as an identifier) or refuses it; never runs it as SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.test_store_database_cli import database_exists, drop_database, run, uri_for


@pytest.fixture
def hostile_name(postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable")
    name = f"ll_{uuid.uuid4().hex[:8]}\"; DROP DATABASE postgres; --'x"
    try:
        yield name
    finally:
        drop_database(name)


def test_hostile_database_name_is_created_literally_never_injected(
    hostile_name: str, tmp_path: Path
) -> None:
    uri = uri_for(hostile_name)
    missing = run(tmp_path, "runs", "ls", store_uri=uri)
    assert missing.returncode == 6 and "Traceback" not in missing.stdout + missing.stderr
    result = run(tmp_path, "db", "upgrade", "--create", store_uri=uri)
    assert result.returncode == 0, result.stdout + result.stderr
    assert database_exists(hostile_name)  # the whole name, quotes and all
    assert database_exists("postgres")  # the injected statement did not run
    again = run(tmp_path, "runs", "ls", store_uri=uri)
    assert again.returncode == 0, again.stdout + again.stderr


def test_database_name_postgres_would_truncate_is_refused(tmp_path: Path) -> None:
    name = "x" * 64  # PostgreSQL would create the first 63 bytes: another database
    result = run(tmp_path, "db", "upgrade", "--create", store_uri=uri_for(name))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "63 bytes" in result.stdout + result.stderr
    assert not database_exists(name[:63])
