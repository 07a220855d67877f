"""CLI start-up benchmarks: whole commands, timed as processes (what a user waits for).

Each figure is the median wall time of the command run as a process, next to references
measured in the same run:
- `loopline data add` of an unchanged folder of 20,000 files x 5 KB (added once before),
  versus the same `loopline.data.add` call timed inside one process (the work itself)
  and `python -c pass` (the interpreter's own start).
- `loopline --help`, versus `python -c pass`.
- `loopline runs ls` on 2,000 runs x 10 metrics, versus `python -c pass` (and, for
  scale, `python -c 'import sqlalchemy'`, which any command that queries SQL pays).

Commands run with compiled bytecode, as from an installed package: a shell with
PYTHONDONTWRITEBYTECODE=1 recompiles every loopline module a command imports at each
start (20-70 ms more), so this script caches bytecode under its temporary folder
(PYTHONPYCACHEPREFIX, nothing is written into the source tree) and warms each command up
once. Wall times swing on a shared machine; CPU times (user + sys) are printed too.

Run: `python benchmarks/bench_cli.py` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import Row, print_table

FILES = 20_000
FILE_SIZE = 5 * 1024
RUNS = 2_000
REPEAT = 9  # medians of 9 runs, taken in turns with the reference
ENTRY = Path(sys.executable).parent / "loopline"

IN_PROCESS_ADD = """
import sys, time
from loopline.project import configure
configure(project=sys.argv[1])
from loopline import data
times = []
for _ in range({repeat}):
    start = time.perf_counter()
    result = data.add(sys.argv[2])
    times.append(time.perf_counter() - start)
    assert not result.created and result.hashed_files == 0
print(sorted(times)[len(times) // 2])
"""


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env.pop("LOOPLINE_STORE_URI", None)  # the temporary projects' own SQLite stores
    env["COLUMNS"] = "120"
    return env


def _timed(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _medians(
    commands: Sequence[Sequence[str]], cwd: Path, env: dict[str, str]
) -> list[tuple[float, float]]:
    """Median wall and CPU seconds of each command, run in turns (a, b, a, b, ...) after a
    warm-up. CPU time moves less than wall time when other processes share the cores."""
    for argv in commands:
        _timed(argv, cwd, env)  # compiles and caches bytecode, warms the page cache
    times: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(REPEAT):
        for argv, argv_times in zip(commands, times, strict=True):
            argv_times.append(_timed(argv, cwd, env))
    return [
        (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for runs in times
    ]


def _rows(
    figure: str, ours: tuple[float, float], python: tuple[float, float], goal: str
) -> list[Row]:
    """A wall-time row against `python -c pass`, and the same in CPU time."""
    return [
        Row(f"{figure} vs `python -c pass`", ours[0] * 1000, python[0] * 1000, goal),
        Row(f"{figure}, CPU (user+sys)", ours[1] * 1000, python[1] * 1000, "(for scale)"),
    ]


def _project(folder: Path, env: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    subprocess.run([str(ENTRY), "init", "."], cwd=folder, env=env, check=True, capture_output=True)
    return folder


def bench_data_readd(workdir: Path, env: dict[str, str]) -> list[Row]:
    project = _project(workdir / "data-project", env)
    folder = project / "files"
    folder.mkdir()
    payload = os.urandom(FILE_SIZE * 2)
    for index in range(FILES):
        offset = index % FILE_SIZE  # distinct content per file
        (folder / f"f{index:05d}.bin").write_bytes(payload[offset : offset + FILE_SIZE])
    add = [str(ENTRY), "data", "add", "files"]
    subprocess.run(add, cwd=project, env=env, check=True, capture_output=True)
    command, python = _medians([add, [sys.executable, "-c", "pass"]], project, env)
    script = IN_PROCESS_ADD.format(repeat=REPEAT)
    done = subprocess.run(
        [sys.executable, "-c", script, str(project), "files"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    call_s = float(done.stdout.strip().splitlines()[-1])
    figure = f"`loopline data add`, unchanged folder of {FILES:,} files"
    return [
        Row(f"{figure} vs the call in-process", command[0] * 1000, call_s * 1000, "<= 500 ms"),
        *_rows(figure, command, python, "<= 500 ms"),
    ]


def bench_help(workdir: Path, env: dict[str, str]) -> list[Row]:
    helped, python = _medians(
        [[str(ENTRY), "--help"], [sys.executable, "-c", "pass"]], workdir, env
    )
    return _rows("`loopline --help`", helped, python, "<= 150 ms")


def bench_runs_ls(workdir: Path, env: dict[str, str]) -> list[Row]:
    from bench_tracking import populate

    project = _project(workdir / "runs-project", env)
    populate(f"sqlite:///{project / '.loopline' / 'loopline.db'}", RUNS)
    floor = [sys.executable, "-c", "import sqlalchemy"]  # what any SQL query costs first
    listed, python, imported = _medians(
        [[str(ENTRY), "runs", "ls"], [sys.executable, "-c", "pass"], floor], project, env
    )
    return [
        *_rows(f"`loopline runs ls`, {RUNS:,} runs x 10 metrics", listed, python, "<= 400 ms"),
        Row(
            "`python -c 'import sqlalchemy'` (for scale)", imported[0] * 1000, python[0] * 1000, "—"
        ),
    ]


def main() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = _environment(workdir)
        rows = [*bench_help(workdir, env), *bench_runs_ls(workdir, env)]
        rows += bench_data_readd(workdir, env)
    print_table("CLI start-up (whole commands, medians)", rows)
    return rows


if __name__ == "__main__":
    main()
