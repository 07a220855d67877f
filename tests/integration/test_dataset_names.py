"""Dataset names users can predict: `data add data/credit.csv` makes `credit`, and datasets
named `credit.csv` by older versions keep resolving, on SQLite and on PostgreSQL."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from loopline import data
from loopline.cli.app import run as cli
from loopline.data._names import default_name, stored_name
from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.project import Stores


def _csv(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,x\n" + "".join(f"{i},{i * 2}\n" for i in range(rows)))
    return path


@pytest.mark.parametrize(
    ("file_name", "name"),
    [
        ("credit.csv", "credit"),
        ("credit.CSV", "credit"),
        ("credit.csv.gz", "credit"),
        ("events.jsonl.zst", "events"),
        ("sales.2024.csv", "sales.2024"),
        ("archive.tar.gz", "archive"),
        ("README", "README"),
        ("logs.gz", "logs"),
        (".csv", ".csv"),  # no stem to keep: refused later as a name
    ],
)
def test_default_names_drop_the_extension_and_a_compression_suffix(
    file_name: str, name: str
) -> None:
    assert default_name(file_name) == name


def test_a_typed_name_finds_the_dataset_up_to_an_extension() -> None:
    assert stored_name("credit", ["credit.csv", "wine"]) == "credit.csv"
    assert stored_name("credit.csv", ["credit", "wine"]) == "credit"
    assert stored_name("credit.csv", ["credit", "credit.csv"]) == "credit.csv"  # exact wins
    assert stored_name("credit", ["credit", "credit.csv"]) == "credit"
    assert stored_name("credit", ["credit.parquet.bak", "credits"]) is None
    assert stored_name("credit.json", ["credit.csv"]) is None  # another format, not a match
    with pytest.raises(InvalidInput, match=r"could mean credit\.csv, credit\.parquet"):
        stored_name("credit", ["credit.csv", "credit.parquet"])


def test_files_are_named_without_extension_folders_keep_theirs(project: Stores) -> None:
    root = project.settings.root
    credit = _csv(root / "data" / "credit.csv", 5)
    result = data.add(credit)
    assert result.version.ref == "credit@1"
    assert result.pointer == credit.parent / "credit.loopline"
    assert "dataset: credit\n" in result.pointer.read_text()
    assert "path: credit.csv\n" in result.pointer.read_text()
    zipped = root / "data" / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert data.add(zipped).version.ref == "events@1"
    folder = root / "images.v2"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"abc")
    assert data.add(folder).version.ref == "images.v2@1"
    assert (root / "images.v2.loopline").is_file()
    assert data.add(credit, name="credit.csv").version.ref == "credit.csv@1"  # --name wins
    assert len(data.load("credit@1")) == 5 and len(data.load("credit.csv@1")) == 5


def test_datasets_named_with_their_extension_keep_working(project: Stores) -> None:
    credit = _csv(project.settings.root / "data" / "credit.csv", 5)
    old = data.add(credit, name="credit.csv")  # what `data add` made before
    _csv(credit, 8)
    again = data.add(credit)  # re-added without --name: the same dataset, not a new one
    assert again.version.ref == "credit.csv@2" and again.created
    assert again.pointer == credit.parent / "credit.csv.loopline"
    assert [d.name for d in data.list_datasets()] == ["credit.csv"]
    assert data.resolve("credit.csv@1") == old.version
    assert data.resolve("credit@1") == old.version  # the README's spelling finds it
    assert data.resolve("credit").version == 2
    assert [v.version for v in data.log("credit")] == [2, 1]
    with pytest.raises(NotFound, match=r"dataset 'credit\.csv' has no version 9; latest is 2"):
        data.resolve("credit@9")


def test_new_names_resolve_with_the_old_spelling_and_the_exact_name_wins(
    project: Stores,
) -> None:
    root = project.settings.root
    new = data.add(_csv(root / "credit.csv", 3)).version
    assert data.resolve("credit.csv@1") == new  # scripts written for the old names
    other = data.add(_csv(root / "other" / "credit.csv", 4), name="credit.csv").version
    assert data.resolve("credit.csv@1") == other and data.resolve("credit@1") == new
    assert len(data.load("credit.csv@1")) == 4 and len(data.load("credit@1")) == 3


def test_two_datasets_one_name_up_to_extension_is_an_error(project: Stores) -> None:
    root = project.settings.root
    data.add(_csv(root / "a" / "credit.csv", 3), name="credit.csv")
    data.add(_csv(root / "b" / "credit.tsv", 3), name="credit.tsv")
    with pytest.raises(InvalidInput, match=r"could mean credit\.csv, credit\.tsv"):
        data.resolve("credit@1")
    assert data.resolve("credit.tsv@1").dataset == "credit.tsv"


def test_two_files_with_one_default_name_are_not_mixed(project: Stores) -> None:
    root = project.settings.root
    data.add(_csv(root / "data" / "credit.csv", 3))
    parquet = root / "data" / "credit.parquet"
    __import__("pandas").DataFrame({"id": [1]}).to_parquet(parquet)
    with pytest.raises(Conflict, match=r"dataset 'credit' holds data/credit.csv, not data/cre"):
        data.add(parquet)
    assert data.add(parquet, name="credit-parquet").version.ref == "credit-parquet@1"
    assert [v.version for v in data.log("credit")] == [1]


@pytest.mark.parametrize(
    "file_name", [".csv", "..csv", "-x.csv", "a b.csv", "données.csv", "x%2e.csv", "~a.csv"]
)
def test_hostile_file_names_are_refused_with_a_hint(project: Stores, file_name: str) -> None:
    path = _csv(project.settings.root / "in" / file_name, 2)
    with pytest.raises(InvalidInput) as info:
        data.add(path)
    said = info.value.message + (info.value.hint or "")
    assert "invalid dataset name" in said or "invalid artifact path" in said  # before any write
    assert not list(path.parent.glob("*.loopline"))
    assert data.list_datasets() == []


@pytest.mark.parametrize("ref", ["../credit@1", "credit/../x@1", "credit.csv/x@1", "@1", ".csv@1"])
def test_hostile_references_are_refused(project: Stores, ref: str) -> None:
    data.add(_csv(project.settings.root / "credit.csv", 2))
    with pytest.raises(InvalidInput):
        data.resolve(ref)


def test_the_cli_uses_the_short_name_and_keeps_the_old_one(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project.settings.root
    wine = _csv(root / "data" / "wine.csv", 4)
    assert cli(["data", "add", str(wine)]) == 0
    out = capsys.readouterr().out
    assert "added wine@1" in out and "wine.loopline" in out
    assert cli(["data", "show", "wine@1", "--json"]) == 0
    assert cli(["data", "show", "wine.csv@1", "--json"]) == 0
    capsys.readouterr()
    data.add(_csv(root / "old" / "credit.csv", 3), name="credit.csv")
    assert cli(["data", "show", "credit.csv@1", "--json"]) == 0
    assert cli(["data", "show", "credit@1", "--json"]) == 0
    capsys.readouterr()
    assert cli(["data", "add", str(_csv(root / "bad" / "-x.csv", 2))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: invalid dataset name '-x'") and "Traceback" not in err
    assert cli(["data", "show", "nope@1"]) == 3
    assert "Error: no dataset named 'nope'" in capsys.readouterr().err
