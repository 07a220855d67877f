"""An unchanged `data add` answers from the stat cache and one plain SQLite read, exactly as
the metadata store would; on every back-end, and whatever it cannot read falls back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loopline import data
from loopline.project import Stores
from loopline.store import quick_latest_version
from loopline.store._migrate import HEAD


def _folder(root: Path, name: str, files: int, *, salt: bytes = b"") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        (folder / f"{index}.bin").write_bytes(salt + bytes([index]) * (50 + index))
    return folder


def test_unchanged_readd_returns_the_stored_latest_version(project: Stores) -> None:
    folder = _folder(project.settings.root, "images", 12)
    first = data.add(folder, message="first")
    again = data.add(folder)
    assert not again.created and again.hashed_files == 0
    stored = project.metadata.datasets.latest_version("images")
    assert again.version == first.version == stored  # every field, created_at included
    assert again.pointer.read_text() == first.pointer.read_text()


def test_quick_read_equals_the_metadata_store_on_sqlite(project: Stores) -> None:
    uri = project.settings.store_uri
    folder = _folder(project.settings.root, "images", 5)
    data.add(folder, message="with a message")
    (folder / "0.bin").write_bytes(b"changed")
    data.add(folder)
    quick = quick_latest_version(uri, "images")
    if uri.startswith("sqlite:///"):
        assert quick == project.metadata.datasets.latest_version("images")
        assert quick is not None and quick.version == 2 and quick.created_at.tzinfo is not None
    else:
        assert quick is None  # PostgreSQL: always the metadata store


def test_readd_after_another_folder_became_the_latest_makes_a_new_version(
    project: Stores,
) -> None:
    root = project.settings.root
    first = _folder(root, "a", 6)
    other = _folder(root, "b", 6, salt=b"other")
    one = data.add(first, name="shared")
    two = data.add(other, name="shared")
    # `a` is unchanged on disk and fully in the stat cache, but no longer the latest version.
    three = data.add(first, name="shared")
    assert (one.version.version, two.version.version) == (1, 2)
    assert three.created and three.version.version == 3 and three.hashed_files == 0
    assert three.version.manifest_hash == one.version.manifest_hash


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///relative/loopline.db",
        "sqlite:////no/such/folder/loopline.db",
        "sqlite:////tmp/x.db?mode=ro",
        "sqlite:////tmp/a%20b.db",
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "not a uri",
        "",
    ],
)
def test_quick_read_leaves_other_uris_to_the_metadata_store(uri: str) -> None:
    assert quick_latest_version(uri, "images") is None


def test_quick_read_answers_only_at_the_schema_revision_it_knows(
    project: Stores, tmp_path: Path
) -> None:
    uri = project.settings.store_uri
    if not uri.startswith("sqlite:///"):
        pytest.skip("a SQLite file is copied and edited")
    data.add(_folder(project.settings.root, "images", 3))
    copy = tmp_path / "copy.db"
    # The backup API, not a file copy: the store is in WAL mode (rows may be in the -wal).
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as to:
        source.backup(to)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", ("0001",))
    assert quick_latest_version(f"sqlite:///{copy}", "images") is None
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (HEAD,))
    assert quick_latest_version(f"sqlite:///{copy}", "images") is not None
    with sqlite3.connect(copy) as db:
        db.execute("DROP TABLE dataset_versions")
    assert quick_latest_version(f"sqlite:///{copy}", "images") is None


@pytest.mark.parametrize("name", ["nope", "images' OR '1'='1", "", "../images", "images\n"])
def test_quick_read_of_unknown_or_malformed_names_finds_nothing(project: Stores, name: str) -> None:
    data.add(_folder(project.settings.root, "images", 2))
    assert quick_latest_version(project.settings.store_uri, name) is None


def test_quick_read_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    assert quick_latest_version(f"sqlite:///{junk}", "images") is None
