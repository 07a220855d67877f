"""Artifact store benchmark: write then read back a 200 MB artifact on a local store.

- ours: `ArtifactStore.put_file` then `get_file` to a new destination (hash verified
  on both sides), into a fresh store folder each run so deduplication never skips the
  write.
- reference: `shutil.copyfile` of the same file plus one BLAKE3 hash of it read from
  disk (multi-threaded, memory-mapped: the fastest way the blake3 package offers).

Both read a file that is already in the page cache; the two sides take turns, five
timed runs each after one untimed warm-up run. Goal: at most 1.5x the reference.

Run: `python benchmarks/bench_artifacts.py` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import blake3

from _harness import Row, median_times, print_table
from loopline.store.artifacts import ArtifactStore

SIZE = 200 * 2**20
REPEAT = 5


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        for _ in range(size // 2**20):
            file.write(os.urandom(2**20))


def bench_write_then_read(workdir: Path) -> Row:
    source = workdir / "artifact.bin"
    _random_file(source, SIZE)
    scratch = workdir / "scratch"

    def fresh_scratch() -> None:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()

    def ours() -> None:
        store = ArtifactStore(str(scratch / "store"))
        blob = store.put_file(source)
        store.get_file(blob.hash, scratch / "download" / "artifact.bin")

    def reference() -> None:
        shutil.copyfile(source, scratch / "copy.bin")
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(source).hexdigest()

    # One untimed run of each first: it reads the source into the page cache, starts
    # blake3's thread pool, and faults in the memory the page cache then reuses (in a VM
    # the first touch of fresh memory can cost several times the copy itself).
    for warm_up in (ours, reference):
        fresh_scratch()
        warm_up()
    ours_s, reference_s = median_times([ours, reference], REPEAT, setup=fresh_scratch)
    shutil.rmtree(scratch)
    return Row("write then read back 200 MB artifact", ours_s * 1000, reference_s * 1000, "<= 1.5x")


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as tmp:
        rows = [bench_write_then_read(Path(tmp))]
    print_table("Artifacts (local store)", rows)
    return rows


if __name__ == "__main__":
    main()
