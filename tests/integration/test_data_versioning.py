"""Dataset versioning end to end on a real project, on SQLite and on PostgreSQL, and once
more through the platform server (`through_the_server_too`, fixtures/remote.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

import loopline as ll
from fixtures.remote import through_the_server_too
from loopline import data
from loopline.errors import Conflict, CorruptedData, InvalidInput, NotFound
from loopline.project import Stores, close
from loopline.store import Direction, LinkKind

pytestmark = through_the_server_too


def _csv(path: Path, rows: int, *, start: int = 0, bump: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,age,segment,income"]
    for i in range(start, start + rows):
        lines.append(f"{i},{20 + i % 50 + bump},{'ab'[i % 2]},{1000.5 + i * 3}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_add_creates_a_version_pointer_and_gitignore(project: Stores) -> None:
    credit = _csv(project.settings.root / "data" / "credit.csv", 100)
    result = data.add(credit, message="first extract")
    version = result.version
    assert result.created and version.ref == "credit@1"
    assert (version.file_count, version.row_count, version.message) == (1, 100, "first extract")
    assert version.total_size == credit.stat().st_size
    pointer = credit.parent / "credit.loopline"
    assert result.pointer == pointer
    text = pointer.read_text()
    assert f"manifest: {version.manifest_hash}" in text and "version: 1" in text
    assert "/credit.csv" in (credit.parent / ".gitignore").read_text().splitlines()
    columns = [c["name"] for c in __import__("json").loads(version.schema_json or "[]")]
    assert columns == ["id", "age", "segment", "income"]


def test_unchanged_data_makes_no_new_version_and_is_not_rehashed(project: Stores) -> None:
    folder = project.settings.root / "images"
    for index in range(30):
        (folder / f"sub{index % 3}").mkdir(parents=True, exist_ok=True)
        (folder / f"sub{index % 3}" / f"{index}.bin").write_bytes(bytes([index]) * (100 + index))
    first = data.add(folder)
    assert first.created and first.hashed_files == 30
    again = data.add(folder)
    assert not again.created and again.hashed_files == 0
    assert again.version == first.version
    (folder / "sub0" / "0.bin").write_bytes(b"changed")
    third = data.add(folder, message="one file changed")
    assert third.created and third.version.version == 2 and third.hashed_files == 1


def test_unchanged_large_file_keeps_its_chunks_and_is_not_rehashed(project: Stores) -> None:
    big = project.settings.root / "weights.bin"
    big.write_bytes(os.urandom(9 << 20))  # chunked: 4 MiB or more
    first = data.add(big)
    again = data.add(big)
    assert (again.created, again.hashed_files) == (False, 0)
    assert data.manifest_of(again.version) == data.manifest_of(first.version)
    assert len(data.manifest_of(again.version).entries[0].file.chunks) > 1


def test_cached_files_whose_blobs_are_gone_are_read_and_stored_again(
    project: Stores, holding_stores: Stores
) -> None:
    folder = project.settings.root / "images"
    contents = {f"sub{i % 2}/{i}.bin": os.urandom(500 + i) for i in range(12)}
    for name, content in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    data.add(folder)
    packs = list(Path(holding_stores.artifacts.uri).glob("packs/*"))
    assert packs
    for pack in packs:
        pack.unlink()  # lost behind loopline's back
    close()  # as a new process would, with nothing in memory
    again = data.add(folder)
    assert (again.created, again.hashed_files) == (False, 12)
    shutil.rmtree(folder)
    data.checkout("images@1")
    assert {name: (folder / name).read_bytes() for name in contents} == contents


def test_stat_cache_of_an_older_layout_is_replaced(project: Stores) -> None:
    credit = _csv(project.settings.root / "credit.csv", 10)
    cache = project.settings.state_dir / "cache" / "stat.db"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(cache)) as db, db:
        st = credit.stat()
        db.execute(
            "CREATE TABLE stat_cache (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " inode INTEGER, stored TEXT)"
        )
        db.execute(
            "INSERT INTO stat_cache VALUES (?, ?, ?, ?, ?)",
            (
                str(credit.resolve()),
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                f'["{"0" * 64}", 1, []]',
            ),
        )
    result = data.add(credit)
    assert result.hashed_files == 1
    assert data.add(credit).hashed_files == 0


def test_references_resolve_by_number_latest_and_hash_prefix(project: Stores) -> None:
    credit = project.settings.root / "credit.csv"
    v1 = data.add(_csv(credit, 10)).version
    v2 = data.add(_csv(credit, 12)).version
    assert data.resolve("credit.csv") == v2
    assert data.resolve("credit.csv@latest") == v2
    assert data.resolve("credit.csv@1") == v1
    assert data.resolve(f"credit.csv@{v1.manifest_hash[:8]}") == v1
    with pytest.raises(NotFound, match="no version 7; latest is 2"):
        data.resolve("credit.csv@7")
    with pytest.raises(NotFound, match="no dataset named"):
        data.resolve("nope@1")
    with pytest.raises(InvalidInput):
        data.resolve("credit.csv@zz")
    assert [v.version for v in data.log("credit.csv")] == [2, 1]


@pytest.mark.parametrize("name", ["a/b", "..", "../x", ".hidden", "", "a\x00b", "x" * 200])
def test_dataset_names_that_could_become_paths_are_refused(project: Stores, name: str) -> None:
    credit = _csv(project.settings.root / "credit.csv", 3)
    with pytest.raises(InvalidInput, match="dataset name"):
        data.add(credit, name=name)
    assert data.list_datasets() == []


def test_paths_outside_the_project_and_empty_folders_are_refused(
    project: Stores, tmp_path: Path
) -> None:
    outside = _csv(tmp_path / "elsewhere" / "x.csv", 3)
    with pytest.raises(InvalidInput, match="outside the project"):
        data.add(outside)
    (project.settings.root / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no files"):
        data.add(project.settings.root / "empty")
    with pytest.raises(NotFound):
        data.add(project.settings.root / "missing.csv")
    with pytest.raises(InvalidInput):
        data.add(project.settings.root / ".loopline")


def test_symlinks_inside_a_folder_are_refused(project: Stores, tmp_path: Path) -> None:
    folder = project.settings.root / "linked"
    folder.mkdir()
    (tmp_path / "secret").write_text("outside")
    (folder / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidInput, match="symbolic link"):
        data.add(folder)


def test_checkout_restores_files_and_old_versions(project: Stores) -> None:
    folder = project.settings.root / "corpus"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "one.txt").write_text("one v1")
    (folder / "two.txt").write_text("two v1")
    data.add(folder)
    (folder / "a" / "one.txt").write_text("one v2")
    (folder / "three.txt").write_text("new in v2")
    data.add(folder)
    pointer = project.settings.root / "corpus.loopline"

    restored = data.checkout("corpus@1")
    assert (folder / "a" / "one.txt").read_text() == "one v1"
    assert restored.extra == (folder / "three.txt",)
    assert "version: 1" in pointer.read_text()
    data.checkout("corpus@1", clean=True)
    assert not (folder / "three.txt").exists()

    (folder / "two.txt").unlink()
    again = data.checkout(pointer)
    assert (folder / "two.txt").read_text() == "two v1"
    assert (again.restored, again.unchanged) == (1, 1)


def test_checkout_of_a_single_file_by_pointer_after_deletion(project: Stores) -> None:
    credit = _csv(project.settings.root / "data" / "credit.csv", 20)
    original = credit.read_bytes()
    data.add(credit)
    credit.unlink()
    data.checkout(credit.parent / "credit.loopline")
    assert credit.read_bytes() == original


def test_tampered_blob_is_detected_on_checkout_and_nothing_is_replaced(
    project: Stores, holding_stores: Stores
) -> None:
    credit = _csv(project.settings.root / "credit.csv", 50)
    data.add(credit)
    credit.write_text("local edit\n")
    store_root = Path(holding_stores.artifacts.uri)
    packs = list(store_root.glob("packs/*.pack")) or list(store_root.glob("blobs/*/*"))
    assert packs
    for pack in packs:
        raw = bytearray(pack.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        pack.write_bytes(bytes(raw))
    with pytest.raises(CorruptedData):
        data.checkout("credit.csv@1")
    assert credit.read_text() == "local edit\n"


def test_malformed_pointer_files_are_clear_errors(project: Stores) -> None:
    bad = project.settings.root / "bad.loopline"
    for text in (
        "garbage",
        "dataset: x\nversion: one\nmanifest: 00\npath: x\n",
        "path: ../../etc\n",
    ):
        bad.write_text(text)
        with pytest.raises(InvalidInput):
            data.checkout(bad)


def test_get_copies_a_version_anywhere(project: Stores, tmp_path: Path) -> None:
    credit = _csv(project.settings.root / "credit.csv", 5)
    data.add(credit)
    written = data.get("credit.csv@1", tmp_path / "out" / "copy.csv")
    assert written == [tmp_path / "out" / "copy.csv"]
    assert written[0].read_bytes() == credit.read_bytes()
    folder = project.settings.root / "docs"
    folder.mkdir()
    (folder / "readme.md").write_text("# hi")
    data.add(folder)
    data.get("docs", tmp_path / "docs-copy")
    assert (tmp_path / "docs-copy" / "readme.md").read_text() == "# hi"


def test_concurrent_adds_of_one_dataset_make_clean_versions(project: Stores) -> None:
    root = project.settings.root
    sources = [_csv(root / f"src{i}" / "shared.csv", 10 + i) for i in range(2)]
    results: list[object] = []

    def add(source: Path) -> None:
        try:
            results.append(data.add(source, name="shared"))
        except Conflict as exc:  # a clear refusal is acceptable
            results.append(exc)

    threads = [threading.Thread(target=add, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = sorted(v.version for v in data.log("shared"))
    assert versions == [1, 2] or (
        len(versions) == 1 and any(isinstance(r, Conflict) for r in results)
    )


def test_load_inside_a_run_records_the_version_as_an_input(project: Stores) -> None:
    credit = _csv(project.settings.root / "credit.csv", 40)
    version = data.add(credit).version
    with ll.start_run(experiment="train") as run:
        frame = data.load("credit@1")
        table = data.load("credit", as_="arrow")
    assert len(frame) == 40 and table.num_rows == 40
    assert list(frame.columns) == ["id", "age", "segment", "income"]
    inputs = project.metadata.runs.list_links(run.id, Direction.INPUT, LinkKind.DATASET_VERSION)
    assert [(link.name, link.ref) for link in inputs] == [("credit", version.id)]


def test_diff_reports_files_schema_stats_and_rows(project: Stores) -> None:
    credit = project.settings.root / "credit.csv"
    data.add(_csv(credit, 100))
    data.add(_csv(credit, 100, start=10, bump=5))  # 10 rows gone, 10 new, the rest changed
    result = data.diff("credit.csv@1", "credit.csv@2", key="id")
    assert result.changed == ("credit.csv",) and not result.added and not result.removed
    assert result.rows is not None
    assert (result.rows.added, result.rows.removed) == (10, 10)
    assert result.rows.changed == 90
    assert any(shift.column == "age" for shift in result.shifts)
    with pytest.raises(InvalidInput):
        data.diff("credit.csv@1", "credit.csv@2", key="no_such_column")


def test_expect_then_validate_passes_on_reference_and_fails_on_corrupted_copy(
    project: Stores, tmp_path: Path
) -> None:
    credit = _csv(project.settings.root / "credit.csv", 200)
    data.add(credit)
    suite_file = tmp_path / "suite.yaml"
    suite = data.expect("credit.csv@1", key_columns=("id",), out=suite_file)
    assert suite_file.read_text().strip() and suite.expectations
    assert data.validate("credit.csv@1", suite_file).success
    lines = credit.read_text().splitlines()
    lines[5] = "3,999,zz,"  # duplicate key, out-of-range age, unknown category, null income
    credit.write_text("\n".join(lines[:150]) + "\n")
    data.add(credit, message="corrupted")
    report = tmp_path / "report.html"
    result = data.validate("credit.csv@2", suite_file, report=report)
    assert not result.success
    kinds = {failure.expectation.kind for failure in result.failures}
    assert {"unique", "between", "in_set", "not_null"} <= kinds
    assert "<html" in report.read_text().lower()
    [stored] = data.history("credit.csv@2")
    assert not stored.success and stored.failed == len(result.failures)
    assert data.read_validation(stored) == result  # with its example rows
    newest, oldest = data.log("credit.csv")
    latest = data.latest_validations([newest, oldest])
    assert latest[newest.id] == stored and latest[oldest.id].success and len(latest) == 2
    assert [r.success for r in data.history("credit.csv@1")] == [True]


def test_malformed_and_empty_tables_are_versioned_but_not_profiled(project: Stores) -> None:
    root = project.settings.root
    broken = root / "broken.csv"
    broken.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")  # a ragged row
    result = data.add(broken)
    assert result.created and result.version.profile_hash is None
    assert result.profile_error and "broken.csv" in result.profile_error
    with pytest.raises(InvalidInput, match=r"broken\.csv"):
        data.load("broken.csv@1")
    empty = root / "empty.csv"
    empty.write_bytes(b"")
    assert data.add(empty).version.total_size == 0
    data.checkout("empty.csv@1")
    assert empty.read_bytes() == b""
    wider = root / "wider.csv"  # a wider row late: DuckDB alone would drop the others
    wider.write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
    assert data.add(wider).profile_error
    mixed = root / "mixed.csv"
    mixed.write_text("id,value\n1,3.5\n2,abc\n3,\n")
    version = data.add(mixed).version
    assert version.row_count == 3
