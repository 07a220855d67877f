"""`loopline fsck` and `loopline gc` (issue 11, defect 12: leftovers after kills).

Real stores throughout: the `project` fixture runs on SQLite and PostgreSQL with a local
artifact folder; the store-level tests run on a local folder and on S3 (moto's server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

import loopline as ll
from fixtures.waiting import eventually
from loopline import data
from loopline.cli.app import run as cli
from loopline.errors import CorruptedData, NotFound
from loopline.maintenance import fsck, gc
from loopline.project import Stores
from loopline.store import ArtifactStore, Direction, LinkKind, MetadataStore
from loopline.store._schema import metadata as schema
from loopline.store.purge import plan_purge, purge
from loopline.store.references import HASH_COLUMNS
from loopline.tracking import delete_run, list_artifacts

SRC = Path(__file__).resolve().parents[2] / "src"
TWO_HOURS_AGO = time.time() - 7200
MB = 1 << 20


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _b3(content: bytes) -> str:
    return str(blake3.blake3(content).hexdigest())


def _files(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under `root` with its size and mtime."""
    return {
        path.relative_to(root).as_posix(): (path.stat().st_size, path.stat().st_mtime)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _age(path: Path, moment: float = TWO_HOURS_AGO) -> None:
    os.utime(path, (moment, moment))


def _age_store(root: Path) -> None:
    """Make every blob and pack look stored two hours ago (out of gc's grace period)."""
    for folder in ("blobs", "packs"):
        for path in (root / folder).rglob("*"):
            if path.is_file():
                _age(path)


def _log_run(name: str, files: dict[str, bytes], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with ll.start_run("gc", name=name) as run:
        for file_name, content in files.items():
            (folder / file_name).write_bytes(content)
            ll.log_artifact(folder / file_name)
    return run.id


# -- fsck ------------------------------------------------------------------------------------

KILLED_ADD = """
import sys, time
from loopline.store import _local_blobs

def slow_write(self, buffers, _write=_local_blobs.LocalPackSink.write):
    _write(self, buffers)
    time.sleep(0.2)  # so that the test sees a partial pack and kills us mid-write
_local_blobs.LocalPackSink.write = slow_write

from loopline.cli.app import run
sys.exit(run(["data", "add", sys.argv[1]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_data_add_leaves_part_files_that_fsck_reports_and_repair_removes_when_old(
    project: Stores, tmp_path: Path
) -> None:
    folder = project.settings.root / "big"
    folder.mkdir()
    for number in range(12):
        (folder / f"part{number}.bin").write_bytes(os.urandom(MB))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    adder = subprocess.Popen(
        [sys.executable, "-c", KILLED_ADD, "big"],
        cwd=project.settings.root,
        env={**env, "PYTHONPATH": str(SRC)},
    )
    temp = Path(project.artifacts.uri) / "tmp"
    try:

        def mid_write() -> bool:
            if any(p.stat().st_size for p in temp.glob("*.part")):
                return True
            assert adder.poll() is None, "data add finished before it could be killed"
            return False

        eventually(mid_write, timeout=60, interval=0.01, message="data add never wrote a pack")
        adder.send_signal(signal.SIGKILL)
        assert adder.wait(timeout=10) == -signal.SIGKILL
    finally:
        adder.kill()
    [killed] = list(temp.glob("*.part"))
    assert killed.stat().st_size > 0

    # Just killed: it looks like a write in progress, so it is no problem yet.
    fresh = fsck(stores=project)
    assert fresh.ok and fresh.in_progress == 1

    _age(killed)
    in_progress = temp / "in-progress.part"  # another writer, still running
    in_progress.write_bytes(b"half a pack")
    found = fsck(stores=project)
    assert [(p.kind, p.where) for p in found.problems] == [
        ("abandoned write", f"tmp/{killed.name}")
    ]
    assert cli(["fsck"]) == 1

    repaired = fsck(repair=True, stores=project)
    assert repaired.ok and [p.kind for p in repaired.repaired] == ["abandoned write"]
    assert not killed.exists() and in_progress.exists()
    assert cli(["fsck"]) == 0


def test_flipped_byte_in_a_blob_is_reported_and_fsck_exits_non_zero(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    (project.settings.root / "model.txt").write_bytes(b"weights " * 100)
    run_id = _log_run("flip", {"model.txt": b"weights " * 100}, project.settings.root / "out")
    digest = _b3(b"weights " * 100)
    blob = Path(project.artifacts.uri, "blobs", digest[:2], digest[2:])
    content = bytearray(blob.read_bytes())
    content[10] ^= 0x01
    blob.write_bytes(bytes(content))

    report = fsck(stores=project)
    [problem] = report.problems
    assert problem.kind == "corrupt blob" and problem.where == f"blobs/{digest[:2]}/{digest[2:]}"
    assert f"run {run_id} artifact model.txt" in problem.detail
    capsys.readouterr()
    assert cli(["fsck"]) == 1
    out = capsys.readouterr().out
    assert "corrupt blob" in out and "Traceback" not in out

    # A repair moves the bad copy aside, but the run's artifact stays lost: still a problem.
    after = fsck(repair=True, stores=project)
    assert [p.kind for p in after.problems] == ["corrupt blob"] and not after.repaired
    assert Path(project.artifacts.uri, "quarantine", "blobs", digest[:2], digest[2:]).is_file()
    [missing] = fsck(stores=project).problems
    assert missing.kind == "missing blob" and missing.where == f"run {run_id} artifact model.txt"


def test_corrupt_packed_blob_is_reported_and_repair_lets_it_be_stored_again(
    artifact_store: ArtifactStore, tmp_path: Path, s3_or_local: Any
) -> None:
    sources = []
    for number in range(3):
        path = tmp_path / f"f{number}.bin"
        path.write_bytes(os.urandom(200_000))
        sources.append(path)
    stored = artifact_store.put_files(sources)
    [pack] = [name for name in s3_or_local.names() if name.endswith(".pack")]
    content = bytearray(s3_or_local.read(pack))
    content[len(content) // 2] ^= 0xFF
    s3_or_local.write(pack, bytes(content))

    found = artifact_store.check()
    assert [(p.kind, p.name) for p in found.problems] == [("corrupt blob", pack)]
    assert len(found.corrupt) == 1
    assert artifact_store.repair(found) == 1
    [bad] = found.corrupt
    assert artifact_store.missing([bad]) == {bad}  # so the next put stores it again
    artifact_store.put_files(sources)
    assert artifact_store.check().problems == []
    restored = [(s, tmp_path / "out" / p.name) for s, p in zip(stored, sources, strict=True)]
    artifact_store.get_files(restored)


# -- gc ----------------------------------------------------------------------------------


def test_gc_purges_a_deleted_run_and_frees_its_artifacts_but_keeps_shared_content(
    project: Stores, tmp_path: Path
) -> None:
    shared_with_run, shared_with_data = b"shared by two runs\n", b"id,age\n1,30\n"
    own = b"only the deleted run has this\n"
    dataset = project.settings.root / "credit"
    dataset.mkdir()
    (dataset / "rows.csv").write_bytes(shared_with_data)
    data.add(dataset)
    doomed = _log_run(
        "doomed",
        {"own.txt": own, "shared.txt": shared_with_run, "rows.csv": shared_with_data},
        tmp_path / "a",
    )
    kept = _log_run("kept", {"shared.txt": shared_with_run}, tmp_path / "b")
    delete_run(doomed)
    _age_store(Path(project.artifacts.uri))

    report = gc(stores=project)
    assert report.runs_purged == 1 and report.blobs_freed >= 1 and report.bytes_freed > 0
    with pytest.raises(NotFound):
        project.metadata.runs.get_run(doomed)
    assert not project.artifacts.exists(_b3(own))
    assert project.artifacts.get_bytes(_b3(shared_with_run)) == shared_with_run
    assert project.artifacts.get_bytes(_b3(shared_with_data)) == shared_with_data
    assert "shared.txt" in [link.name for link in list_artifacts(kept)]
    target = tmp_path / "restored"
    project.artifacts.get_files(
        [
            (entry.file, target / entry.path)
            for entry in data.manifest_of(data.resolve("credit")).entries
        ]
    )
    assert (target / "rows.csv").read_bytes() == shared_with_data
    assert fsck(stores=project).ok


def test_gc_dry_run_changes_nothing(project: Stores, tmp_path: Path) -> None:
    doomed = _log_run("doomed", {"own.txt": b"freed only for real\n"}, tmp_path / "a")
    delete_run(doomed)
    (Path(project.artifacts.uri) / "tmp").mkdir(exist_ok=True)
    abandoned = Path(project.artifacts.uri) / "tmp" / "old.part"
    abandoned.write_bytes(b"x")
    _age_store(Path(project.artifacts.uri))
    _age(abandoned)
    before = _files(Path(project.artifacts.uri))

    report = gc(dry_run=True, stores=project)
    assert report.dry_run and report.runs_purged == 1 and report.blobs_freed >= 1
    assert report.leftovers_removed == 1
    assert _files(Path(project.artifacts.uri)) == before
    assert project.metadata.runs.get_run(doomed).deleted
    assert cli(["gc", "--dry-run"]) == 0
    assert _files(Path(project.artifacts.uri)) == before

    done = gc(stores=project)
    assert (done.runs_purged, done.blobs_freed) == (1, report.blobs_freed)
    assert not abandoned.exists()


def test_gc_older_than_purges_only_runs_deleted_long_enough_ago(project: Stores) -> None:
    with ll.start_run("gc") as old:
        pass
    with ll.start_run("gc") as recent:
        pass
    delete_run(old.id)
    delete_run(recent.id)
    from sqlalchemy import update

    from loopline.store._schema import runs

    with project.metadata.db.write("backdate") as conn:
        when = datetime.now(UTC) - timedelta(days=40)
        conn.execute(update(runs).where(runs.c.id == old.id).values(deleted_at=when))
    assert gc(older_than=timedelta(days=30), stores=project).runs_purged == 1
    assert project.metadata.runs.get_run(recent.id).deleted
    assert gc(stores=project).runs_purged == 1


def test_deleted_parent_with_a_kept_child_is_not_purged(store: MetadataStore) -> None:
    experiment = store.runs.get_or_create_experiment("e")
    parent = store.runs.create_run(experiment.id)
    child = store.runs.create_run(experiment.id, parent_id=parent.id)
    orphan_parent = store.runs.create_run(experiment.id)
    orphan_child = store.runs.create_run(experiment.id, parent_id=orphan_parent.id)
    for run in (parent, orphan_parent, orphan_child):
        store.runs.set_deleted(run.id, True)
    plan = plan_purge(store, datetime.now(UTC))
    assert plan.runs == [orphan_child.id, orphan_parent.id]  # children first
    assert plan.kept == {parent.id: f"its child run {child.id} is kept"}
    assert purge(store, plan) == 2
    assert store.runs.get_run(child.id).parent_id == parent.id


def test_unreferenced_blob_within_the_grace_period_survives_gc(project: Stores) -> None:
    """A concurrent writer: it stored a blob, gc runs, then the writer commits its row."""
    blob = project.artifacts.put_bytes(b"a model being logged right now")
    report = gc(stores=project)
    assert report.kept_recent >= 1 and project.artifacts.exists(blob.hash)
    with ll.start_run("gc") as run:
        project.metadata.runs.add_links(
            run.id, Direction.OUTPUT, LinkKind.ARTIFACT, [("model.bin", blob.hash, blob.size)]
        )
    assert fsck(stores=project).ok
    # Without the grace period the same blob would have gone: the test can fail.
    orphan = project.artifacts.put_bytes(b"nobody will ever reference this")
    gc(grace=timedelta(0), stores=project)
    assert not project.artifacts.exists(orphan.hash)


def test_gc_keeps_old_content_that_a_writer_has_just_reused(
    project: Stores, tmp_path: Path
) -> None:
    """Reusing stored content (dedup) touches it, so gc's grace period covers it too."""
    loose = project.artifacts.put_bytes(b"stored long ago, unreferenced")
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(1000))
    [packed] = project.artifacts.put_files([folder / "a.bin"])
    _age_store(Path(project.artifacts.uri))
    # A writer now stores the same content: nothing is written, but both are touched.
    project.artifacts.put_bytes(b"stored long ago, unreferenced")
    project.artifacts.put_files([folder / "a.bin"])
    gc(stores=project)
    assert project.artifacts.exists(loose.hash) and project.artifacts.exists(packed.hash)
    # `missing` (how `data add` trusts its cache) touches what it finds, too.
    _age_store(Path(project.artifacts.uri))
    assert project.artifacts.missing([loose.hash, packed.hash]) == set()
    gc(stores=project)
    assert project.artifacts.exists(loose.hash) and project.artifacts.exists(packed.hash)
    _age_store(Path(project.artifacts.uri))
    gc(stores=project)
    assert not project.artifacts.exists(loose.hash) and not project.artifacts.exists(packed.hash)


def test_gc_stops_before_changing_anything_when_a_manifest_is_unreadable(project: Stores) -> None:
    dataset = project.settings.root / "ds"
    dataset.mkdir()
    (dataset / "a.txt").write_text("a")
    version = data.add(dataset).version
    orphan = project.artifacts.put_bytes(b"garbage")
    manifest = Path(project.artifacts.uri, "blobs", version.manifest_hash[:2])
    (manifest / version.manifest_hash[2:]).write_bytes(b"{not json")
    _age_store(Path(project.artifacts.uri))
    with ll.start_run("gc") as run:
        pass
    delete_run(run.id)
    with pytest.raises(CorruptedData, match="gc stopped before changing anything"):
        gc(stores=project)
    assert project.artifacts.exists(orphan.hash)
    assert project.metadata.runs.get_run(run.id).deleted  # not purged either
    assert cli(["gc"]) == CorruptedData.exit_code


# -- packs: repacking, concurrent readers -----------------------------------------------------


def test_mostly_garbage_pack_is_repacked_and_live_chunks_still_verify(
    artifact_store: ArtifactStore, tmp_path: Path, s3_or_local: Any
) -> None:
    contents = {"big.bin": os.urandom(5 * MB), "small.bin": os.urandom(MB)}
    contents |= {f"dead{n}.bin": os.urandom(2 * MB) for n in range(4)}
    sources = []
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
        sources.append(tmp_path / name)
    stored = dict(zip(contents, artifact_store.put_files(sources), strict=True))
    assert stored["big.bin"].chunks, "the large file must be stored as chunks"
    live = {blob.hash for name in ("big.bin", "small.bin") for blob in stored[name].blobs}
    packs_before = {n for n in s3_or_local.names() if n.endswith(".pack")}

    reader = s3_or_local.reopen()  # another process, indexes loaded before the repack
    reader.get_bytes(stored["small.bin"].hash)
    result = artifact_store.collect_garbage(lambda: live, grace=0)
    assert result.packs_repacked >= 1 and result.blobs_freed == 4
    assert result.bytes_freed >= 7 * MB
    packs_after = {n for n in s3_or_local.names() if n.endswith(".pack")}
    assert packs_after - packs_before and packs_before - packs_after
    for name in ("dead0.bin", "dead3.bin"):
        assert artifact_store.missing([stored[name].hash]) == {stored[name].hash}
    for store in (artifact_store, reader):  # the stale reader finds the new packs itself
        out = tmp_path / f"out-{id(store)}"
        store.get_files([(stored[n], out / n) for n in ("big.bin", "small.bin")])
        assert (out / "big.bin").read_bytes() == contents["big.bin"]
        assert store.get_bytes(stored["small.bin"].hash) == contents["small.bin"]
    assert artifact_store.check().problems == []


def test_gc_never_touches_a_pack_written_within_the_grace_period(
    artifact_store: ArtifactStore, tmp_path: Path, s3_or_local: Any
) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(1000))
    artifact_store.put_files([tmp_path / "a.bin"])
    before = s3_or_local.names()
    result = artifact_store.collect_garbage(set, grace=3600)
    assert result.blobs_freed == 0 and result.kept_recent == 1
    assert s3_or_local.names() == before
    assert artifact_store.collect_garbage(set, grace=0).packs_removed == 1


def test_every_hash_column_is_known_to_gc_and_fsck() -> None:
    """A new table holding digests must be added to references.HASH_COLUMNS."""
    hash_columns = {
        (table.name, column.name)
        for table in schema.tables.values()
        for column in table.columns
        if column.name.endswith("_hash") or (table.name, column.name) == ("run_links", "ref")
    }
    unknown = hash_columns - HASH_COLUMNS.keys()
    assert not unknown, f"say in store/references.py what these hold: {sorted(unknown)}"


# -- the real entry point ------------------------------------------------------------------


def _loopline(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    entry = Path(sys.executable).parent / "loopline"
    return subprocess.run(
        [str(entry), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_real_entry_point_fsck_and_gc_exit_codes(tmp_path: Path) -> None:
    assert _loopline(["init"], tmp_path).returncode == 0
    script = textwrap.dedent(
        """
        import loopline as ll
        with ll.start_run("e"):
            open("kept.txt", "w").write("kept")
            ll.log_artifact("kept.txt")
        with ll.start_run("e") as run:
            open("m.txt", "w").write("weights")
            ll.log_artifact("m.txt")
        print(run.id)
        """
    )
    logged = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    run_id = logged.stdout.strip()
    clean = _loopline(["fsck"], tmp_path)
    assert clean.returncode == 0 and "no problems" in clean.stdout, clean.stderr

    assert _loopline(["runs", "delete", run_id], tmp_path).returncode == 0
    dry = _loopline(["gc", "--dry-run", "--grace", "0m"], tmp_path)
    assert dry.returncode == 0 and "runs purged" in dry.stdout and "dry run" in dry.stdout
    done = _loopline(["gc", "--grace", "0m"], tmp_path)
    assert done.returncode == 0 and "bytes freed" in done.stdout, done.stderr
    assert _loopline(["runs", "show", run_id], tmp_path).returncode == 3

    bad = _loopline(["gc", "--older-than", "soon"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("Error:")
    assert "Traceback" not in bad.stderr

    kept = _b3(b"kept")
    victim = tmp_path / ".loopline" / "artifacts" / "blobs" / kept[:2] / kept[2:]
    victim.write_bytes(b"KEPT")
    broken = _loopline(["fsck"], tmp_path)
    assert broken.returncode == 1 and "corrupt blob" in broken.stdout
    assert "Traceback" not in broken.stderr


# -- helpers ----------------------------------------------------------------------------------


class _Objects:
    """The store's objects seen from outside, local folder or S3."""

    def __init__(self, store: ArtifactStore, client: Any, endpoint: str | None) -> None:
        self.store, self.client, self.endpoint = store, client, endpoint
        if client is not None:
            self.bucket, _, self.prefix = store.uri.removeprefix("s3://").partition("/")

    def names(self) -> list[str]:
        if self.client is None:
            root = Path(self.store.uri)
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/"
        )
        return sorted(
            obj["Key"].removeprefix(f"{self.prefix}/")
            for page in pages
            for obj in page.get("Contents", [])
        )

    def read(self, name: str) -> bytes:
        if self.client is None:
            return Path(self.store.uri, name).read_bytes()
        body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")["Body"]
        return bytes(body.read())

    def write(self, name: str, content: bytes) -> None:
        if self.client is None:
            Path(self.store.uri, name).write_bytes(content)
        else:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}", Body=content)

    def reopen(self) -> ArtifactStore:
        return ArtifactStore(self.store.uri, s3_endpoint_url=self.endpoint)


@pytest.fixture
def s3_or_local(artifact_store: ArtifactStore, request: pytest.FixtureRequest) -> _Objects:
    if artifact_store.uri.startswith("s3://"):
        endpoint = request.getfixturevalue("s3_endpoint")
        return _Objects(artifact_store, request.getfixturevalue("s3_client"), endpoint)
    return _Objects(artifact_store, None, None)


def test_abandoned_s3_upload_is_reported_and_repair_aborts_it(s3_uri: Any, s3_client: Any) -> None:
    store = ArtifactStore(s3_uri.uri, s3_endpoint_url=s3_uri.endpoint_url)
    bucket = s3_uri.uri.removeprefix("s3://").split("/")[0]
    s3_client.create_multipart_upload(Bucket=bucket, Key="artifacts/packs/killed.pack")
    found = store.check()  # moto dates every upload in 2010: long abandoned
    [problem] = found.problems
    assert problem.kind == "abandoned write" and problem.name.startswith("uploads/packs/killed")
    assert store.repair(found) == 1
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.check().problems == []


def test_durations_are_parsed_strictly() -> None:
    from loopline.cli._maintenance import parse_duration

    assert parse_duration("0d", "--older-than") == timedelta(0)
    assert parse_duration("1d12h", "--older-than") == timedelta(days=1, hours=12)
    assert parse_duration("90m", "--grace") == timedelta(minutes=90)
    for bad in ("", "soon", "-1d", "1.5h", "1d 2h", "d"):
        with pytest.raises(ll.errors.InvalidInput):
            parse_duration(bad, "--grace")
