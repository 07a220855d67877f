"""`loopline data ...` commands, and moving versions through a real S3 endpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loopline import data
from loopline.cli.app import run as cli
from loopline.project import Stores, configure


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def _csv(path: Path, rows: int, *, bad_row: bool = False) -> Path:
    lines = ["id,age,segment"] + [f"{i},{20 + i % 40},{'xy'[i % 2]}" for i in range(rows)]
    if bad_row:
        lines[3] = "1,500,zz"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_add_log_show_diff_and_get(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credit = _csv(project.settings.root / "credit.csv", 30)
    assert cli(["data", "add", str(credit), "-m", "first"]) == 0
    assert "credit@1" in capsys.readouterr().out
    assert cli(["data", "add", str(credit)]) == 0
    assert "unchanged" in capsys.readouterr().out
    _csv(credit, 35)
    assert cli(["data", "add", str(credit), "-m", "five more"]) == 0
    assert cli(["data", "log", "credit"]) == 0
    out = capsys.readouterr().out
    assert "five more" in out and "first" in out
    assert cli(["data", "ls"]) == 0
    assert "credit " in capsys.readouterr().out
    assert cli(["data", "show", "credit@2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["profile"]["row_count"] == 35
    assert cli(["data", "diff", "credit@1", "credit@2", "--key", "id"]) == 0
    assert "+5" in capsys.readouterr().out
    assert cli(["data", "get", "credit@1", str(tmp_path / "old.csv")]) == 0
    assert len((tmp_path / "old.csv").read_text().splitlines()) == 31


def test_validate_exits_one_on_failure_and_writes_a_report(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credit = _csv(project.settings.root / "credit.csv", 60)
    assert cli(["data", "add", str(credit)]) == 0
    suite = tmp_path / "suite.yaml"
    assert cli(["data", "expect", "credit.csv@1", "--out", str(suite), "--key", "id"]) == 0
    assert cli(["data", "validate", "credit.csv@1", "--suite", str(suite)]) == 0
    assert "PASSED" in capsys.readouterr().out
    _csv(credit, 60, bad_row=True)
    assert cli(["data", "add", str(credit)]) == 0
    report = tmp_path / "dq.html"
    code = cli(["data", "validate", "credit.csv@2", "--suite", str(suite), "--report", str(report)])
    assert code == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "unique" in out
    assert report.is_file()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["data", "show", "nope@1"], 3, "no dataset named"),
        (["data", "show", "a/b@1"], 2, "invalid dataset name"),
        (["data", "add", "/etc/hostname"], 2, "outside the project"),
        (["data", "checkout", "missing.loopline"], 3, "no pointer file"),
        (["data", "validate", "x@1", "--suite", "nope.yaml"], 3, "no expectation suite file"),
    ],
)
def test_bad_input_is_one_line_with_an_exit_code(
    project: Stores,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    assert cli(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("Error:") and message in err and "Traceback" not in err


def test_push_then_pull_by_pointer_into_a_fresh_clone(
    project: Stores, tmp_path: Path, s3_uri: tuple[str, str], clean_env: pytest.MonkeyPatch
) -> None:
    remote, endpoint = s3_uri
    clean_env.setenv("LOOPLINE_S3_ENDPOINT_URL", endpoint)
    configure(project=project.settings.root)
    folder = project.settings.root / "corpus"
    folder.mkdir()
    for index in range(20):
        (folder / f"{index}.txt").write_text(f"document {index}\n" * (index + 1))
    (folder / "big.bin").write_bytes(bytes(range(256)) * 40_000)  # ~10 MB: chunked
    data.add(folder)
    pushed = data.push(remote)
    assert pushed.versions == 1 and pushed.bytes > 0
    assert data.push(remote).bytes == 0  # nothing new to send

    clone = tmp_path / "clone"  # a teammate's fresh clone: the pointer, no data, no database
    clone.mkdir()
    shutil.copy(project.settings.root / "corpus.loopline", clone / "corpus.loopline")
    shutil.copy(project.settings.root / "loopline.toml", clone / "loopline.toml")
    clean_env.delenv("LOOPLINE_STORE_URI")
    clean_env.chdir(clone)
    configure(project=clone)
    assert data.pull(remote, [str(clone / "corpus.loopline")]).bytes > 0
    result = data.checkout(clone / "corpus.loopline")
    assert result.version is None  # this clone's database has never seen it
    for index in range(20):
        text = (clone / "corpus" / f"{index}.txt").read_text()
        assert text == f"document {index}\n" * (index + 1)
    assert (clone / "corpus" / "big.bin").read_bytes() == (folder / "big.bin").read_bytes()
