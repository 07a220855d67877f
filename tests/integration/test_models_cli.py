"""`loopline models ...`, `loopline gate` and `loopline audit ls`: exit codes, tables and
one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from loopline.cli.app import run as cli
from loopline.project import Stores

GATES = """
rules:
  - metrics.roc_auc >= 0.95
  - compare.champion.roc_auc >= -0.005
evaluation:
  data: credit@1
  target: y
"""


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def _register(project: Stores, columns: list[str]) -> str:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    csv = project.settings.root / "credit.csv"
    if not csv.exists():
        frame.iloc[:, :8].assign(y=target).to_csv(csv, index=False)
        ll.data.add(csv, name="credit")
    with ll.start_run(experiment="churn"):
        data = ll.data.load("credit@1")
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(data[columns], data["y"])
        return ll.models.log_model(model, name="churn", input_example=data[columns].head(3)).ref


def test_registry_commands_show_list_alias_and_audit(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _register(project, ["mean_radius", "mean_texture"])
    assert cli(["models", "ls"]) == 0
    assert "churn" in capsys.readouterr().out
    assert cli(["models", "alias", ref, "challenger", "--reason", "try"]) == 0
    assert "churn@challenger → churn/1" in capsys.readouterr().out
    assert cli(["models", "show", "churn"]) == 0
    out = capsys.readouterr().out
    assert "candidate" in out and "challenger" in out
    assert cli(["models", "show", "churn@challenger", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ref"] == "churn/1" and body["aliases"] == ["challenger"]
    assert cli(["models", "show", ref]) == 0
    out = capsys.readouterr().out
    assert "lineage of churn/1" in out and "data credit@1" in out
    assert cli(["models", "lineage", ref]) == 0
    out = capsys.readouterr().out
    assert "credit@1" in out and "run " in out
    assert cli(["models", "describe", "churn", "-t", "risk_category=minimal"]) == 0
    capsys.readouterr()
    assert cli(["audit", "ls", "--model", "churn", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in events][:2] == ["model.update", "alias.set"]
    assert cli(["audit", "ls", "--model", "churn", "--json", "--limit", "1"]) == 0
    cut = capsys.readouterr()
    assert len(json.loads(cut.out)) == 1 and "showing the first 1 events" in cut.err
    assert cli(["models", "alias", ref, "challenger", "--delete"]) == 0
    assert cli(["models", "archive", ref, "--reason", "done"]) == 0
    capsys.readouterr()
    assert cli(["models", "promote", ref, "--to", "production"]) == 4  # archived: Conflict
    assert "archived" in capsys.readouterr().err


def test_gate_and_promote_exit_codes_and_failed_rule_table(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "gates.yaml"
    policy.write_text(GATES)
    good = _register(project, ["mean_radius", "mean_texture", "mean_perimeter", "mean_area"])
    weak = _register(project, ["mean_smoothness"])
    assert cli(["gate", good, "--policy", str(policy)]) == 0
    assert "passed" in capsys.readouterr().out
    args = ["--policy", str(policy), "--alias", "champion", "--reason", "best"]
    assert cli(["models", "promote", good, *args]) == 0
    assert "production" in capsys.readouterr().out
    assert cli(["gate", weak, "--policy", str(policy)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli(["models", "promote", weak, *args]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "compare.champion.roc_auc" in captured.out
    assert captured.err.startswith("Error:") and "Traceback" not in captured.err
    assert cli(["models", "show", "churn@champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ref"] == good
    assert cli(["models", "card", "churn@champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_details"]["name"] == "churn"
    card = tmp_path / "card.html"
    assert cli(["models", "card", "churn@champion", "--html", "-o", str(card)]) == 0
    assert "<html" in card.read_text().lower()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["models", "show", "nope/1"], 3),
        (["models", "show", "../x"], 2),
        (["models", "alias", "churn/7", "champion"], 3),
        (["models", "alias", "churn/1", "latest"], 2),
        (["models", "promote", "churn/1", "--to", "shipped"], 2),
        (["models", "promote", "churn/1", "--force"], 2),
        (["models", "export", "churn/1", "--format", "pmml"], 2),
        (["models", "describe", "churn", "-t", "novalue"], 2),
        (["audit", "ls", "--limit", "x"], 2),
    ],
)
def test_bad_input_is_one_line_with_an_exit_code(
    project: Stores, capsys: pytest.CaptureFixture[str], args: list[str], code: int
) -> None:
    _register(project, ["mean_radius"])
    capsys.readouterr()
    assert cli(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


def test_a_gate_policy_with_a_syntax_error_exits_two(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _register(project, ["mean_radius"])
    policy = tmp_path / "gates.yaml"
    policy.write_text("rules:\n  - metrics.roc_auc >> 0.9\n")
    capsys.readouterr()
    assert cli(["gate", ref, "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "position" in err and "rules[0]" in err


def test_real_entry_point_evaluates_and_prints_tables(project: Stores) -> None:
    ref = _register(project, ["mean_radius", "mean_texture"])
    root = project.settings.root
    frame = pd.read_csv(root / "credit.csv")
    frame["segment"] = np.where(frame["mean_radius"] > 14, "big", "small")
    frame.to_csv(root / "credit.csv", index=False)
    ll.data.add(root / "credit.csv", name="credit")
    report = root / "eval.html"
    entry = str(Path(sys.executable).parent / "loopline")
    args = ["models", "evaluate", ref, "credit@2", "-y", "y", "-s", "segment"]
    done = subprocess.run(
        [entry, *args, "--report", str(report)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "roc_auc" in done.stdout and "segment=big" in done.stdout
    assert "<svg" in report.read_text()
