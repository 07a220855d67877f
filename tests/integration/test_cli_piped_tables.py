"""Tables piped to another program or a file (`loopline runs ls | grep ...`): every value
whole, whatever the width a terminal would have, and a listing cut at its limit says so.
Run through the real entry point with stdout a pipe, as a user's shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import loopline as ll
from loopline.project import Stores

LONG_EXPERIMENT = "customer-churn-propensity-quarterly-retraining-emea-region"
LONG_NAME = "gradient-boosted-trees-with-calibrated-probabilities"
PARAMS = {
    "learning_rate_schedule": "cosine-with-warm-restarts",
    "feature_set": "demographics+usage+billing-history",
    "class_weighting": "balanced-subsample",
}


def _loopline(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `loopline` with stdout and stderr pipes and no COLUMNS set."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    entry = Path(sys.executable).parent / "loopline"
    return subprocess.run(
        [str(entry), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _log_runs(count: int) -> None:
    for i in range(count):
        experiment = LONG_EXPERIMENT if i % 2 == 0 else "baseline"
        params = {k: f"{v}-{i}" for k, v in PARAMS.items()}
        with ll.start_run(experiment=experiment, name=f"{LONG_NAME}-{i}", params=params):
            ll.log_metrics(
                {"validation_auc": 0.9, "validation_logloss": 0.3, "brier": 0.1, "ece": 0.02}
            )


def test_piped_runs_ls_prints_long_names_and_every_column_whole(project: Stores) -> None:
    _log_runs(2)
    done = _loopline(["runs", "ls"], project.settings.root)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert LONG_EXPERIMENT in out and f"{LONG_NAME}-0" in out and f"{LONG_NAME}-1" in out
    for key, value in PARAMS.items():
        assert key in out and f"{value}-0" in out and f"{value}-1" in out
    for metric in ("validation_auc", "validation_logloss", "brier", "ece"):
        assert metric in out
    assert "…" not in out
    rows = [line for line in out.splitlines() if LONG_NAME in line]
    assert len(rows) == 2  # one line a run: nothing wrapped
    assert done.stderr == ""  # no note: every run shown


def test_piped_output_honours_columns_when_set(project: Stores) -> None:
    _log_runs(2)
    env_columns = {"COLUMNS": "60"}
    entry = Path(sys.executable).parent / "loopline"
    done = subprocess.run(
        [str(entry), "runs", "ls"],
        cwd=project.settings.root,
        env={**os.environ, **env_columns},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 60


def test_runs_ls_says_when_more_runs_matched_than_shown(project: Stores) -> None:
    _log_runs(3)
    cut = _loopline(["runs", "ls", "--max-results", "2"], project.settings.root)
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout.count(LONG_NAME) == 2
    assert cut.stderr.strip() == "showing the first 2 runs; more matched (--max-results shows more)"
    whole = _loopline(["runs", "ls", "--max-results", "3", "--json"], project.settings.root)
    assert whole.returncode == 0 and whole.stderr == ""
    assert whole.stdout.count(LONG_NAME) == 3
