"""Benchmarks of two trees measured in one sitting, turn by turn: has a change slowed anything?

A restructuring must leave the figures where they were; on a shared machine only a
comparison made in the same sitting means anything. This script exports a git revision
(default: the merge base with main's first parent, or any revision you name) into a
temporary folder, then runs the named benchmark scripts of both trees in turns (old,
new, old, new, ...), each script with its own tree's `src` first on PYTHONPATH (its
subprocesses too), and prints per figure the median of each tree and new / old, as a
ratio in the direction of "worse" (above 1: the new tree is slower, or does less per
second).

Run: `python benchmarks/compare_trees.py REV bench_tracking.py "bench_data.py --small"
[--rounds 2]`. Each script's arguments go in one quoted word.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Row, print_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Runs a benchmark script's main() and prints its rows as JSON on the last line.
RUNNER = """
import json, runpy, sys
script, args = sys.argv[1], sys.argv[2:]
sys.argv = [script, *args]
rows = runpy.run_path(script)["main"]()
print("\\nROWS " + json.dumps([row.__dict__ for row in rows]))
"""


def export(revision: str, into: Path) -> Path:
    """The tree of `revision` (src and benchmarks) unpacked under `into`."""
    archive = subprocess.run(
        ["git", "archive", revision, "src", "benchmarks"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run(tree: Path, command: str, cwd: Path) -> list[Row]:
    script, *args = shlex.split(command)
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tree / "benchmarks" / script), *args],
        cwd=cwd,  # the same for both trees: a git checkout as cwd costs git queries
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} failed in {tree}:\n{done.stderr[-3000:]}")
    last = done.stdout.rstrip().splitlines()[-1]
    return [Row(**row) for row in json.loads(last.removeprefix("ROWS "))]


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the old tree: a commit, tag or branch")
    parser.add_argument("scripts", nargs="+", help='e.g. bench_tracking.py "bench_data.py --small"')
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    found: dict[tuple[str, str], dict[str, list[Row]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        old = export(options.revision, Path(scratch) / "old")
        for round_ in range(options.rounds):
            for command in options.scripts:
                for label, tree in (("old", old), ("new", ROOT)):
                    print(f"round {round_ + 1}: {command} ({label})", flush=True)
                    for row in run(tree, command, Path(scratch)):
                        found.setdefault((command, row.figure), {}).setdefault(label, []).append(
                            row
                        )
    rows = []
    for (command, figure), by_tree in found.items():
        if set(by_tree) != {"old", "new"}:
            continue
        old_value = statistics.median(r.ours for r in by_tree["old"])
        new_value = statistics.median(r.ours for r in by_tree["new"])
        higher = by_tree["new"][0].higher_is_better
        worse = (old_value / new_value) if higher else (new_value / old_value)
        rows.append(
            Row(
                f"{command.split()[0]}: {figure}",
                new_value,
                old_value,
                f"worse x{worse:.2f}",
                unit=by_tree["new"][0].unit,
                higher_is_better=higher,
            )
        )
    print_table(f"This tree (ours) against {options.revision} (reference), medians", rows)
    return rows


if __name__ == "__main__":
    main()
