"""Several real processes on one project at once; a writer killed mid-artifact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fixtures.waiting import eventually
from loopline.store import MetadataStore, RunStatus

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import sys, time
    import loopline as ll
    from loopline.store import _migrate

    applied = []
    original = _migrate.upgrade
    _migrate.upgrade = lambda engine: applied.append(original(engine)) or applied[-1]
    import loopline.store.metadata as metadata
    metadata.upgrade = _migrate.upgrade

    start_at = float(sys.argv[1])
    while time.time() < start_at:  # line the processes up on one instant
        time.sleep(0.001)
    with ll.start_run(experiment="crowd") as run:
        for step in range(1000):
            ll.log_metric("loss", 1.0 / (step + 1), step=step)
            ll.log_metric("acc", step / 1000.0)
    print("MIGRATED" if any(applied) else "REUSED", run.id)
    """
)


def _spawn(script: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(store_uri: str, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env.update(
        LOOPLINE_STORE_URI=store_uri,
        LOOPLINE_ARTIFACT_URI=str(root / "artifacts"),
        LOOPLINE_METRIC_FLUSH_INTERVAL="0.05",
    )
    return env


@pytest.mark.empty_store  # the migration itself is under test
def test_eight_processes_on_a_fresh_project_migrate_once_and_lose_no_point(
    store_uri: str, tmp_path: Path
) -> None:
    env = _env(store_uri, tmp_path)
    start_at = f"{time.time() + 3.0:.3f}"  # after every interpreter has imported loopline
    workers = [_spawn(WORKER, start_at, cwd=tmp_path, env=env) for _ in range(8)]
    outputs = []
    for worker in workers:
        out, errors = worker.communicate(timeout=180)
        assert worker.returncode == 0, errors
        assert "Traceback" not in errors and "locked" not in errors, errors
        outputs.append(out.split())
    assert sorted(word for word, _ in outputs).count("MIGRATED") == 1
    store = MetadataStore(store_uri)
    try:
        runs = store.runs.search_runs(max_results=100)
        assert len(runs) == 8 and {r.status for r in runs} == {RunStatus.FINISHED}
        assert len(store.runs.list_experiments()) == 1
        for run in runs:
            assert len(store.runs.get_metric_history(run.id, "loss")) == 1000
            assert len(store.runs.get_metric_history(run.id, "acc")) == 1000
            assert run.metrics["loss"] == pytest.approx(1.0 / 1000)
    finally:
        store.close()


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import loopline as ll
    run = ll.start_run(experiment="big")
    print(run.id, flush=True)
    ll.log_artifact(sys.argv[1])
    """
)


def test_sigkill_while_writing_an_artifact_leaves_no_partial_blob(tmp_path: Path) -> None:
    store_uri = f"sqlite:///{tmp_path / 'meta.db'}"
    artifacts = tmp_path / "artifacts"
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # 1 GB of distinct blocks: long enough to be caught mid-write
        block = os.urandom(1 << 20)
        for index in range(1024):
            fh.write(index.to_bytes(8, "little") + block[8:])
    writer = _spawn(KILLED_WRITER, str(big), cwd=tmp_path, env=_env(store_uri, tmp_path))
    assert writer.stdout is not None
    run_id = writer.stdout.readline().strip()
    eventually(
        lambda: list((artifacts / "tmp").glob("*.part")),
        timeout=60,
        interval=0.005,
        message="the writer never started the artifact",
    )
    time.sleep(0.05)  # a little further into the blob
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)  # reaps the process and closes its pipes
    assert writer.returncode == -signal.SIGKILL

    from loopline.store import ArtifactStore

    store = ArtifactStore(str(artifacts))
    blobs = [blob for blob in (artifacts / "blobs").rglob("*") if blob.is_file()]
    for blob in blobs:  # every complete blob verifies; the big one is not among them
        assert blob.stat().st_size < big.stat().st_size
        store.get_bytes(blob.parent.name + blob.name)
    metadata = MetadataStore(store_uri)
    try:
        assert metadata.runs.get_run(run_id).status is RunStatus.RUNNING
        assert metadata.runs.end_run(run_id, "FAILED", error="killed").status is RunStatus.FAILED
        names = [link.name for link in metadata.runs.list_links(run_id)]
        assert "big.bin" not in names
    finally:
        metadata.close()
    assert store.clean_temp(older_than=0) >= 1
