"""The `loopline` command: in-process for most checks, one real subprocess per path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import loopline as ll
from loopline.cli.app import run as cli
from loopline.tracking import Stores


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def _runs(project: Stores) -> list[str]:
    ids = []
    for model, auc, depth in [("rf", 0.95, 6), ("lr", 0.90, 6), ("rf", 0.80, 3)]:
        with ll.start_run(experiment="churn", params={"model": model, "depth": depth}) as run:
            ll.log_metric("auc", auc)
        ids.append(run.id)
    return ids


def test_runs_ls_filters_and_sorts(project: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(project)
    code = cli(["runs", "ls", "-e", "churn", "-f", "metrics.auc > 0.85", "-o", "metrics.auc desc"])
    out = capsys.readouterr().out
    assert code == 0
    assert ids[0][:8] in out and ids[1][:8] in out and ids[2][:8] not in out
    assert out.index(ids[0][:8]) < out.index(ids[1][:8])


def test_runs_ls_json_is_machine_readable(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    _runs(project)
    with ll.start_run(experiment="churn") as odd:
        ll.log_metric("auc", float("nan"))
    capsys.readouterr()
    assert cli(["runs", "ls", "--json", "-o", "metrics.auc desc"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [r["metrics"]["auc"] for r in body] == [0.95, 0.9, 0.8, "nan"]
    assert body[-1]["id"] == odd.id


def test_runs_show_prints_params_metrics_code_and_artifacts(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with ll.start_run(params={"C": 0.5}) as run:
        ll.log_metric("auc", float("inf"))
        ll.log_artifact(tmp_path / "notes.txt")
    assert cli(["runs", "show", run.id[:6]]) == 0
    out = capsys.readouterr().out
    for needle in (run.id, "C", "0.5", "auc", "inf", "notes.txt", "FINISHED", "python"):
        assert needle in out


def test_runs_compare_highlights_differing_params(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _runs(project)
    assert cli(["runs", "compare", ids[0], ids[1]]) == 0
    out = capsys.readouterr().out
    assert "params.model" in out and "metrics.auc" in out
    assert "params.depth" not in out  # equal params are hidden unless --all
    assert cli(["runs", "compare", ids[0], ids[1], "--all"]) == 0
    assert "params.depth" in capsys.readouterr().out


def test_delete_restore_and_end(project: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(project)
    assert cli(["runs", "delete", ids[0]]) == 0
    assert len(ll.search_runs()) == 2
    assert cli(["runs", "restore", ids[0]]) == 0
    assert len(ll.search_runs()) == 3
    running = ll.start_run()
    assert cli(["runs", "end", running.id, "--status", "failed"]) == 0
    assert ll.get_run(running.id).status.value == "FAILED"


def test_experiments_ls_and_artifacts_get(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.txt").write_text("weights")
    with ll.start_run(experiment="churn") as run:
        ll.log_artifact(tmp_path / "m.txt", artifact_path="model")
    assert cli(["experiments", "ls"]) == 0
    assert "churn" in capsys.readouterr().out
    assert cli(["artifacts", "ls", run.id]) == 0
    assert "model/m.txt" in capsys.readouterr().out
    assert cli(["artifacts", "get", run.id, "model/m.txt", str(tmp_path / "dl")]) == 0
    assert (tmp_path / "dl" / "m.txt").read_text() == "weights"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["runs", "show", "0123456789abcdef0123456789abcdef"], 3, "no run with id"),
        (["runs", "show", "../../etc/passwd"], 2, "not a run id"),
        (["runs", "ls", "-f", "metrics.auc >> 1"], 2, "invalid filter"),
        (["runs", "ls", "-e", "nope"], 3, "no experiment named"),
        (["artifacts", "get", "0123456789abcdef0123456789abcdef", "../x", "."], 2, ".."),
        (["runs", "compare", "abcd"], 2, "at least two"),
        (["runs", "end", "abcd", "--status", "bogus"], 3, "no run with id"),
    ],
)
def test_bad_input_prints_one_line_and_exits_non_zero(
    project: Stores,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    assert cli(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("Error:")


def test_commands_outside_a_project_say_so(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.chdir(tmp_path)
    assert cli(["runs", "ls"]) == 7
    assert "no loopline project" in capsys.readouterr().err
    assert not (tmp_path / ".loopline").exists()


def test_init_creates_the_project_and_commands_find_it_from_subfolders(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.chdir(tmp_path)
    assert cli(["init"]) == 0
    assert (tmp_path / "loopline.toml").is_file() and (tmp_path / ".loopline").is_dir()
    (tmp_path / "src" / "deep").mkdir(parents=True)
    clean_env.chdir(tmp_path / "src" / "deep")
    assert cli(["experiments", "ls"]) == 0
    assert cli(["db", "upgrade"]) == 0
    assert (tmp_path / ".loopline" / "loopline.db").is_file()


def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    entry = Path(sys.executable).parent / "loopline"
    return subprocess.run(
        [str(entry), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_real_entry_point_help_and_error_exit_codes(tmp_path: Path) -> None:
    helped = _subprocess(["--help"], tmp_path)
    assert helped.returncode == 0 and "runs" in helped.stdout and "experiments" in helped.stdout
    assert _subprocess(["init"], tmp_path).returncode == 0
    missing = _subprocess(["runs", "show", "deadbeef"], tmp_path)
    assert missing.returncode == 3
    assert missing.stderr.startswith("Error:") and "Traceback" not in missing.stderr
    traced = _subprocess(["--debug", "runs", "show", "deadbeef"], tmp_path)
    assert traced.returncode != 0 and "Traceback" in traced.stderr
    usage = _subprocess(["runs", "ls", "--no-such-flag"], tmp_path)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
