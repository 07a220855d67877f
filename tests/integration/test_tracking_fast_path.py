"""What makes runs cheap to start (issue 12), and that the shortcuts never record stale facts.

Kept connections (no WAL checkpoint per write), one transaction for a new run with its
params and tags, the git state and package list captured once and re-read when they
change, and search results that are never cut silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

import loopline as ll
from loopline.errors import InvalidInput
from loopline.store import MetadataStore, RunStatus
from loopline.store._engine import write_transaction
from loopline.store._schema import runs as runs_table
from loopline.tracking import Stores
from loopline.tracking.search import RUNS_PAGE

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def test_sqlite_store_keeps_its_connection_so_a_write_does_not_checkpoint(
    tmp_path: Path,
) -> None:
    # Closing the last connection to a WAL database checkpoints it (a disk sync, and the
    # -wal file goes): a connection per transaction paid that on every write.
    db = tmp_path / "meta.db"
    store = MetadataStore(f"sqlite:///{db}")
    try:
        run = store.runs.create_run(store.runs.get_or_create_experiment("e").id)
        store.runs.log_params(run.id, {"a": 1})
        wal = Path(f"{db}-wal")
        assert wal.exists() and wal.stat().st_size > 0
    finally:
        store.close()
    assert store.runs.get_run(run.id).params == {"a": "1"}  # reopens after close


def test_store_used_before_a_fork_works_in_the_child_and_the_parent(store: MetadataStore) -> None:
    exp = store.runs.get_or_create_experiment("forked")
    before = store.runs.create_run(exp.id, name="parent-before")
    pid = os.fork()
    if pid == 0:  # the child: its own connections, never the parent's
        code = 1
        try:
            child = store.runs.create_run(exp.id, name="child")
            store.runs.log_params(child.id, {"who": "child"})
            code = 0 if store.runs.get_run(child.id).params == {"who": "child"} else 2
        finally:
            os._exit(code)
    store.runs.log_params(before.id, {"who": "parent"})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = store.runs.create_run(exp.id, name="parent-after")
    names = {run.name for run in store.runs.search_runs([exp.id])}
    assert names == {"parent-before", "child", "parent-after"}
    assert store.runs.get_run(before.id).params == {"who": "parent"}
    assert store.runs.get_run(after.id).status is RunStatus.RUNNING


def test_start_run_with_a_bad_param_creates_no_run(project: Stores) -> None:
    # The run, its params, tags and system artifacts are one transaction: a run never
    # appears half-recorded (it used to be left behind, FAILED, without its params).
    with pytest.raises(InvalidInput):
        ll.start_run(experiment="atomic", params={"ok": 1, "bad key!": 2})
    assert ll.active_run() is None
    assert ll.search_runs("atomic") == []


def test_create_run_returns_what_a_read_back_returns(store: MetadataStore) -> None:
    # create_run builds its answer from what it wrote instead of reading the run back.
    exp = store.runs.get_or_create_experiment("same")
    made = store.runs.create_run(
        exp.id,
        user="u",
        source="train.py --token=abc",
        python_version="3.11",
        params={"b": 2, "a": "x"},
        tags={"t": "v"},
        artifacts=[("_loopline/requirements.txt", "0" * 64, 10)],
    )
    assert made == store.runs.get_run(made.id)
    assert [link.name for link in store.runs.list_links(made.id)] == ["_loopline/requirements.txt"]


def _commit_repository(root: Path) -> None:
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "train.py").write_text("print(1)\n")
    subprocess.run([*GIT, "add", "train.py"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "first"], cwd=root, check=True)


def _age_everything(root: Path) -> None:
    """Set every mtime in the work tree and .git back: a capture is then not "racy".

    `git status` refreshes the index for the new mtimes; the index is then set back
    too, but stays newer than the files (else git itself finds it racy and rewrites it).
    """
    old = time.time() - 120
    for path in [root, *root.rglob("*")]:
        os.utime(path, (old, old), follow_symlinks=False)
    subprocess.run(["git", "status", "-s"], cwd=root, check=True, capture_output=True)
    newer = old + 60
    os.utime(root / ".git" / "index", (newer, newer))


def _head(root: Path) -> str:
    done = subprocess.run([*GIT, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip()


def test_git_state_is_captured_once_while_the_repository_is_unchanged(
    project: Stores, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = project.settings.root
    _commit_repository(root)
    _age_everything(root)
    head = _head(root)
    with ll.start_run() as first:
        pass
    # Without git on PATH a fresh read would record no commit: the cached one is reused.
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with ll.start_run() as second:
        pass
    assert ll.get_run(second.id).code == ll.get_run(first.id).code
    assert ll.get_run(second.id).code.commit == head


def test_an_edit_after_a_cached_capture_is_recorded(project: Stores) -> None:
    root = project.settings.root
    _commit_repository(root)
    _age_everything(root)
    with ll.start_run() as clean:
        pass
    (root / "train.py").write_text("print(2)\n")  # same size: only the mtime tells
    with ll.start_run() as edited:
        pass
    assert ll.get_run(clean.id).code.dirty is False
    stored = ll.get_run(edited.id)
    assert stored.code.dirty is True and stored.code.patch_hash
    out = root / "fetched"
    ll.download_artifacts(edited.id, "_loopline", out)
    assert "print(2)" in (out / "_loopline" / "code.patch").read_text()


def test_a_commit_and_a_checkout_after_a_cached_capture_are_recorded(project: Stores) -> None:
    root = project.settings.root
    _commit_repository(root)
    _age_everything(root)
    with ll.start_run() as first:
        pass
    (root / "train.py").write_text("print(3)\n")
    subprocess.run([*GIT, "commit", "-q", "-am", "second"], cwd=root, check=True)
    with ll.start_run() as committed:
        pass
    subprocess.run([*GIT, "checkout", "-q", "-b", "feature"], cwd=root, check=True)
    with ll.start_run() as branched:
        pass
    assert ll.get_run(committed.id).code.commit == _head(root) != ll.get_run(first.id).code.commit
    assert ll.get_run(committed.id).code.dirty is False
    assert ll.get_run(branched.id).code.branch == "feature"


def test_a_package_installed_during_the_process_is_recorded(
    project: Stores, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    with ll.start_run() as before:
        pass
    name = f"justinstalled{uuid.uuid4().hex[:8]}"
    info = site / f"{name}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    with ll.start_run() as after:
        pass
    out = tmp_path / "out"
    ll.download_artifacts(before.id, "_loopline", out / "before")
    ll.download_artifacts(after.id, "_loopline", out / "after")
    assert name not in (out / "before" / "_loopline" / "requirements.txt").read_text()
    assert f"{name}==1.2" in (out / "after" / "_loopline" / "requirements.txt").read_text()


def _bulk_runs(stores: Stores, experiment: str, count: int) -> None:
    """Insert `count` finished runs in one transaction (setup only)."""
    exp = stores.metadata.runs.get_or_create_experiment(experiment)
    now = int(time.time() * 1000)
    rows = [
        {
            "id": uuid.uuid4().hex,
            "experiment_id": exp.id,
            "name": f"run-{index}",
            "status": "FINISHED",
            "start_time": now - index,
            "end_time": now,
            "user": "t",
            "source": "t",
        }
        for index in range(count)
    ]
    with write_transaction(stores.metadata.db.engine) as conn:
        conn.execute(runs_table.insert(), rows)


def test_search_runs_as_pandas_returns_every_match_by_default(project: Stores) -> None:
    _bulk_runs(project, "many", 150)  # past the old silent default of 100
    frame = ll.search_runs("many", output="pandas")
    assert len(frame) == 150
    assert len(ll.search_runs("many", output="pandas", max_results=7)) == 7


def test_search_runs_list_says_so_when_results_were_cut(project: Stores) -> None:
    _bulk_runs(project, "more", RUNS_PAGE + 1)
    with pytest.warns(UserWarning, match="more matched"):
        found = ll.search_runs("more")
    assert len(found) == RUNS_PAGE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ll.search_runs("more", max_results=RUNS_PAGE + 1)) == RUNS_PAGE + 1
        assert len(ll.search_runs("more", max_results=5)) == 5  # asked for: no warning
