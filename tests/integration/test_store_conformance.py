"""The metadata-store conformance suite (loopline.testing) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.store import MetadataStore
from loopline.testing import STORE_CHECKS, Check, check_store


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_store_passes_conformance_check(store: MetadataStore, check: Check) -> None:
    check(store)


def test_check_store_runs_every_check_on_a_fresh_store(tmp_path: Path) -> None:
    """The public entry point: each check gets its own empty database (several assert
    that a list starts empty), and every check has a name of its own."""
    opened: list[MetadataStore] = []

    def make_store() -> MetadataStore:
        opened.append(MetadataStore(f"sqlite:///{tmp_path / f'meta{len(opened)}.db'}"))
        return opened[-1]

    check_store(make_store)
    assert len(opened) == len(STORE_CHECKS) == len({check.__name__ for check in STORE_CHECKS})


def test_store_reopens_an_existing_database_without_migrating_again(store_uri: str) -> None:
    from loopline.store._engine import create_store_engine
    from loopline.store._migrate import HEAD, current_revision, upgrade

    first = MetadataStore(store_uri)
    first.runs.get_or_create_experiment("kept")
    first.close()
    engine = create_store_engine(store_uri)
    assert current_revision(engine) == HEAD
    assert upgrade(engine) is False
    engine.dispose()
    again = MetadataStore(store_uri)
    assert again.runs.get_experiment("kept").name == "kept"
    again.close()


def test_unreachable_database_is_a_clear_store_unavailable_error() -> None:
    from loopline.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="unavailable"):
        MetadataStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


@pytest.mark.parametrize(
    "uri", ["mysql://x@y/z", "not a uri", "postgresql+asyncpg://u@h/d", "sqlite+foo:///x"]
)
def test_unsupported_store_uri_is_invalid_input(uri: str) -> None:
    from loopline.errors import InvalidInput

    with pytest.raises(InvalidInput):
        MetadataStore(uri)
