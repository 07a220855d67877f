"""Dataset storage benchmark: packed small files and chunked large files on a local store.

Each figure next to a reference measured in the same run, on the same files:

1. `put_files` of 20,000 files of ~5 KB (random) into an empty store, vs reading and
   BLAKE3-hashing the same files in a plain single-threaded loop. Goal <= 1.6x.
2. `put_files` of one 1 GB file (random) into an empty store, vs `shutil.copyfile` of
   it plus a multi-threaded BLAKE3 hash of it. Goal <= 1.2x.
3. Change one row (a few bytes) in the middle of a 1 GB CSV-like file and `put_files`
   it again: the new bytes stored, vs what a file-per-blob store writes again (the
   whole file). Goal <= 16 MB. Also the time of that second `put_files`, vs reading
   and hashing the file (multi-threaded BLAKE3): reported, no goal.
4. `get_files` of the 20,000-file set into an empty folder, vs writing the same files
   from memory with open/write/close. Goal <= 1.4x.

Before every run, untimed: a fresh store or output folder (so deduplication never skips
work), `os.sync()` (so one run's writeback does not land in the next), and the sources
read again (this VM pages out memory left idle for a few seconds, so "in the page
cache" must be re-established). The two sides take turns, REPEAT timed runs each after
one untimed warm-up, and medians are reported. Both sides of the get_files figure
build their destination paths inside the timed run. Expect +-20% between runs on a
shared 2-core VM: compare the ratios, and run it twice.

Run: `python benchmarks/bench_storage.py [small] [large] [edit]` (default: all), or
`make bench`. Needs about 4 GB free in the temp folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import blake3

from _harness import Row, median_times, print_table
from loopline.store.artifacts import ArtifactStore, StoredFile

SMALL_FILES = 20_000
SMALL_SIZE = 5_000  # bytes, +- 10%
SMALL_FOLDERS = 20
LARGE = 1 << 30
REPEAT = 5
MB = 1 << 20


def _warm(paths: list[Path]) -> None:
    """Read files into the page cache. This VM pages out memory left idle for a few
    seconds (DAMON), so "in the page cache" has to be re-established before each run."""
    for path in paths:
        with open(path, "rb") as file:
            while file.read(16 * MB):
                pass


def _fresh(folder: Path, sources: list[Path]) -> Callable[[], None]:
    def make() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.sync()  # start each run with the previous run's writes on disk
        _warm(sources)

    return make


class _NewFolders:
    """A new, empty folder before each run, all removed at the end.

    Deleting 20,000 files makes creating files on this machine's disk (ext4 mounted with
    `discard`, on a virtual disk) several times slower for a while, so the small-file
    runs never delete anything until they are all done; `os.sync` before each run keeps
    one run's writeback out of the next.
    """

    def __init__(self, parent: Path, sources: Callable[[], list[Path]]) -> None:
        self.parent = parent
        self.sources = sources
        self.count = 0
        self.current = parent / "run-0"

    def __call__(self) -> None:
        self.count += 1
        self.current = self.parent / f"run-{self.count}"
        self.current.mkdir(parents=True)
        os.sync()  # start each run with the previous run's writes on disk
        _warm(self.sources())

    def remove(self) -> None:
        shutil.rmtree(self.parent, ignore_errors=True)


def _small_files(workdir: Path) -> tuple[list[Path], list[bytes]]:
    paths, contents = [], []
    for number in range(SMALL_FILES):
        path = workdir / "src" / f"part-{number % SMALL_FOLDERS:02d}" / f"{number:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(SMALL_SIZE - SMALL_SIZE // 10 + number % (SMALL_SIZE // 5))
        path.write_bytes(data)
        paths.append(path)
        contents.append(data)
    return paths, contents


def bench_small(workdir: Path) -> list[Row]:
    paths, contents = _small_files(workdir)
    stores = _NewFolders(workdir / "stores", lambda: paths)
    stored: list[StoredFile] = []
    last_store: list[Path] = []

    def put() -> None:
        stored[:] = ArtifactStore(str(stores.current / "store")).put_files(paths)
        last_store[:] = [stores.current / "store"]

    def read_and_hash() -> None:
        for path in paths:
            with open(path, "rb") as file:
                blake3.blake3(file.read()).hexdigest()

    for warm_up in (put, read_and_hash):
        stores()
        warm_up()
    put_s, hash_s = median_times([put, read_and_hash], REPEAT, setup=stores)

    # get_files reads from the last store; each run writes into a new, empty folder.
    store = ArtifactStore(str(last_store[0]))
    outs = _NewFolders(workdir / "out", lambda: list(last_store[0].glob("packs/*")))
    relative = [p.relative_to(workdir / "src") for p in paths]

    def get() -> None:
        store.get_files([(f, outs.current / r) for f, r in zip(stored, relative, strict=True)])

    def write_plainly() -> None:
        for folder in {r.parent for r in relative}:
            (outs.current / folder).mkdir(parents=True, exist_ok=True)
        for name, data in zip(relative, contents, strict=True):
            with open(outs.current / name, "wb") as file:
                file.write(data)

    for warm_up in (get, write_plainly):
        outs()
        warm_up()
    get_s, write_s = median_times([get, write_plainly], REPEAT, setup=outs)
    stores.remove()
    outs.remove()
    return [
        Row("put_files 20,000 x 5 KB (vs read + hash)", put_s * 1000, hash_s * 1000, "<= 1.6x"),
        Row("get_files 20,000 x 5 KB (vs plain writes)", get_s * 1000, write_s * 1000, "<= 1.4x"),
    ]


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        for _ in range(size // MB):
            file.write(os.urandom(MB))


def bench_large(workdir: Path) -> list[Row]:
    source = workdir / "large.bin"
    _random_file(source, LARGE)
    scratch = workdir / "scratch"
    fresh = _fresh(scratch, [source])

    def put() -> None:
        ArtifactStore(str(scratch / "store")).put_files([source])

    def copy_and_hash() -> None:
        shutil.copyfile(source, scratch / "copy.bin")
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(source).hexdigest()

    for warm_up in (put, copy_and_hash):
        fresh()
        warm_up()
    put_s, copy_s = median_times([put, copy_and_hash], REPEAT, setup=fresh)
    shutil.rmtree(scratch)
    source.unlink()
    return [Row("put_files one 1 GB file (vs copy + hash)", put_s * 1000, copy_s * 1000, "<= 1.2x")]


def _csv_file(path: Path, size: int) -> None:
    """Random rows like `0004821937,kqzjx...,5177.3104,...\n`, 64 bytes each."""
    import numpy as np

    rng = np.random.default_rng(7)
    rows = MB // 64
    with open(path, "wb") as file:
        for _ in range(size // MB):
            table = rng.integers(ord("0"), ord("9") + 1, size=(rows, 64), dtype=np.uint8)
            table[:, 11:40] = rng.integers(ord("a"), ord("z") + 1, size=(rows, 29), dtype=np.uint8)
            table[:, [10, 40, 48]] = ord(",")
            table[:, 44] = ord(".")
            table[:, 63] = ord("\n")
            file.write(table.tobytes())


def bench_edit(workdir: Path) -> list[Row]:
    source = workdir / "table.csv"
    _csv_file(source, LARGE)
    scratch = workdir / "scratch"
    fresh = _fresh(scratch, [source])

    def packs_size() -> int:
        return sum(p.stat().st_size for p in (scratch / "store").glob("packs/*.pack"))

    fresh()
    ArtifactStore(str(scratch / "store")).put_files([source])
    before = packs_size()
    with open(source, "r+b") as file:  # change one value of the middle row
        file.seek(LARGE // 2 // 64 * 64 + 41)
        file.write(b"99.9999")
    os.sync()  # write back now, not during the timed runs

    def put_again() -> None:
        ArtifactStore(str(scratch / "store")).put_files([source])

    def read_and_hash() -> None:
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(source).hexdigest()

    put_again()
    new_bytes = packs_size() - before
    read_and_hash()
    again_s, hash_s = median_times(
        [put_again, read_and_hash], REPEAT, setup=lambda: _warm([source])
    )
    shutil.rmtree(scratch)
    source.unlink()
    return [
        Row(
            "new bytes stored after a one-row edit of a 1 GB CSV (vs whole file)",
            new_bytes / MB,
            LARGE / MB,
            "<= 16 MB",
            unit="MB",
        ),
        Row(
            "put_files of that edited 1 GB CSV (vs read + hash)", again_s * 1000, hash_s * 1000, "-"
        ),
    ]


BENCHES = {"small": bench_small, "large": bench_large, "edit": bench_edit}


def main(names: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    for name in names or list(BENCHES):
        with tempfile.TemporaryDirectory(prefix="loopline-bench-") as tmp:
            rows += BENCHES[name](Path(tmp))
    print_table("Dataset storage (local store)", rows)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
