"""`loopline runs ls` without a filter or sort reads SQLite directly (store._quick_runs):
it must list exactly what `search_runs` lists, on every back-end, and whatever it cannot
answer exactly goes to the metadata store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import loopline as ll
from loopline.cli.app import run as cli
from loopline.project import Stores
from loopline.store._migrate import HEAD
from loopline.store._quick import Unanswered
from loopline.store._quick_runs import quick_list_runs
from loopline.tracking import search_runs

# What only a SQLite file can show (PostgreSQL's answer is Unanswered, tested above them).
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


def _history(project: Stores) -> dict[str, str]:
    """Runs of every shape a listing meets: two experiments, nested, failed, deleted,
    NaN and inf metrics, params, tags, a secret on the command line."""
    ids: dict[str, str] = {}
    with ll.start_run(experiment="churn", params={"model": "rf", "depth": 6}) as run:
        ll.log_metrics({"auc": 0.91, "loss": float("nan")})
        ll.set_tag("team", "risk")
        with ll.start_run(experiment="churn", parent=run) as child:
            ll.log_metric("auc", float("inf"))
        ids["parent"], ids["child"] = run.id, child.id
    with pytest.raises(RuntimeError), ll.start_run(experiment="churn") as failed:
        raise RuntimeError("boom token=hunter2")
    ids["failed"] = failed.id
    with ll.start_run(experiment="fraud", params={"C": 0.5}) as other:
        ll.log_metric("auc", 0.5, step=1)
        ll.log_metric("auc", 0.7, step=2)
    ids["other"] = other.id
    with ll.start_run(experiment="fraud") as gone:
        pass
    ll.delete_run(gone.id)
    ids["deleted"] = gone.id
    return ids


@pytest.mark.parametrize(
    ("experiments", "deleted"),
    [
        (None, False),
        (None, True),
        (["churn"], False),
        (["fraud"], True),
        (["churn", "fraud"], False),
    ],
)
def test_quick_listing_equals_search_runs(
    project: Stores, experiments: list[str] | None, deleted: bool
) -> None:
    _history(project)
    expected = search_runs(experiments, max_results=100, include_deleted=deleted)
    uri = project.settings.store_uri
    if not uri.startswith("sqlite:///"):
        with pytest.raises(Unanswered):
            quick_list_runs(uri, experiments, 100, deleted)
        return
    quick = quick_list_runs(uri, experiments, 100, deleted)
    assert quick == expected  # every field of every run, in the same order
    assert quick and all(run.start_time.tzinfo is not None for run in quick)


@sqlite_only
def test_quick_listing_cuts_as_search_runs_does(project: Stores) -> None:
    for index in range(7):
        with ll.start_run(experiment="many", name=f"r{index}"):
            pass
    uri = project.settings.store_uri
    for limit in (1, 3, 7, 50):
        assert quick_list_runs(uri, None, limit) == search_runs(max_results=limit)


@sqlite_only
def test_quick_listing_by_experiment_id_and_unknown_names(project: Stores) -> None:
    ids = _history(project)
    uri = project.settings.store_uri
    experiment_id = ll.get_run(ids["other"]).experiment_id
    assert quick_list_runs(uri, [experiment_id], 10) == search_runs([experiment_id])
    for unknown in (["nope"], ["churn", "nope"], ["churn' OR '1'='1"]):
        with pytest.raises(Unanswered):  # the metadata store says NotFound, with its hint
            quick_list_runs(uri, unknown, 10)
    for limit in (0, -1, 50_001):
        with pytest.raises(Unanswered):
            quick_list_runs(uri, None, limit)


@sqlite_only
def test_quick_listing_answers_only_at_the_schema_revision_it_knows(
    project: Stores, tmp_path: Path
) -> None:
    uri = project.settings.store_uri
    _history(project)
    copy = tmp_path / "copy.db"
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as to:
        source.backup(to)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", ("0001",))
    with pytest.raises(Unanswered):
        quick_list_runs(f"sqlite:///{copy}", None, 10)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (HEAD,))
        db.execute("UPDATE runs SET git_dirty = 7")  # not a value the schema writes
    with pytest.raises(Unanswered):
        quick_list_runs(f"sqlite:///{copy}", None, 10)
    with sqlite3.connect(copy) as db:
        db.execute("DROP TABLE latest_metrics")
    with pytest.raises(Unanswered):
        quick_list_runs(f"sqlite:///{copy}", None, 10)


def test_cli_listing_is_the_same_with_and_without_the_quick_path(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _history(project)
    capsys.readouterr()
    assert cli(["runs", "ls", "--json", "--deleted"]) == 0
    quick = json.loads(capsys.readouterr().out)
    # A filter that matches everything takes the metadata store's path.
    assert cli(["runs", "ls", "--json", "--deleted", "-f", "attributes.status != 'x'"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert quick == slow
    assert {run["id"] for run in quick} == set(ids.values())
    assert "hunter2" not in json.dumps(quick)
    assert cli(["runs", "ls", "-e", "nope"]) != 0
    assert "no experiment named 'nope'" in capsys.readouterr().err
    assert cli(["runs", "ls", "-n", "60000"]) != 0  # refused as before, not answered quickly
    assert "max_results must be 1..50000" in capsys.readouterr().err


@sqlite_only
def test_plain_listing_does_not_import_sqlalchemy(project: Stores) -> None:
    _history(project)
    script = (
        "import sys\n"
        "from loopline.cli.app import run\n"
        "code = run(['runs', 'ls', '--json'])\n"
        "print(code, 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project.settings.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "0 False"
