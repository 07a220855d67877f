"""`import loopline` and `loopline --help` load none of the heavy dependencies."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.store._migrate import HEAD

HEAVY = [
    "pandas",
    "numpy",
    "sqlalchemy",
    "alembic",
    "fsspec",
    "s3fs",
    "pyarrow",
    "psycopg",
    "duckdb",
    "pandera",
    "yaml",
    "jinja2",
    "rich",
]

PROBE = """
import sys
{code}
heavy = {heavy!r}
print(",".join(name for name in heavy if name in sys.modules))
"""


def _loaded(code: str) -> list[str]:
    script = PROBE.format(code=code, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return [name for name in line.split(",") if name]


def test_import_loopline_loads_no_heavy_dependency() -> None:
    assert _loaded("import loopline; loopline.__version__") == []


def test_creating_a_client_loads_no_heavy_dependency(tmp_path: Path) -> None:
    """`ll.Client(...)` opens its metadata store on first use, as the default does."""
    code = f"import loopline as ll; ll.Client(project={str(tmp_path)!r}).close()"
    assert _loaded(code) == []


def test_the_version_lives_in_a_leaf_the_facade_and_pyproject_agree_with() -> None:
    import tomllib

    import loopline
    from loopline._version import __version__

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert loopline.__version__ == __version__ == declared
    script = (
        "import sys, loopline._version\n"
        "print(sorted(m for m in sys.modules if m.startswith('loopline.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['loopline._version']"


def test_cli_help_loads_no_heavy_dependency() -> None:
    code = (
        "from loopline.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['--help']); run(['runs', '--help'])"
    )
    assert _loaded(code) == []


def test_public_names_resolve_lazily() -> None:
    import loopline

    for name in loopline.__all__:
        assert getattr(loopline, name) is not None


def _loaded_modules(code: str, prefix: str, cwd: Path | None = None) -> set[str]:
    """The modules under `prefix` that `code` leaves loaded, in a fresh interpreter."""
    script = (
        f"{code}\nimport sys\nprint(','.join(n for n in sys.modules if n.startswith({prefix!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=cwd
    )
    return set(filter(None, done.stdout.strip().splitlines()[-1].split(",")))


def test_a_sub_command_imports_only_its_own_cli_module() -> None:
    code = (
        "from loopline.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['data', 'add', '--help']) == 0"
    )
    cli = _loaded_modules(code, "loopline.cli.")
    assert "loopline.cli._data" in cli
    assert cli.isdisjoint({"loopline.cli._models", "loopline.cli._deploy", "loopline.cli._runs"})


def test_the_root_help_still_lists_every_command() -> None:
    from loopline.cli.app import COMMANDS

    done = subprocess.run(
        [sys.executable, "-c", "from loopline.cli.app import run; run(['--help'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = [line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line]
    assert listed == list(COMMANDS)


def test_a_typo_is_answered_with_the_closest_command() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from loopline.cli.app import run; sys.exit(run(['dat']))",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "No such command 'dat'. Did you mean 'data'?" in done.stderr


def test_store_artifact_side_and_dataset_records_load_no_sqlalchemy() -> None:
    code = (
        "from loopline.store import ArtifactStore, Blob, StoredFile, DatasetVersion\n"
        "from loopline.store import check_dataset_name, validate_logical_path, LinkKind\n"
        "import loopline.data, loopline.project, loopline.lineage"
    )
    assert _loaded(code) == []


def test_every_store_name_resolves_lazily() -> None:
    import loopline.store

    for name in loopline.store.__all__:
        assert getattr(loopline.store, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        loopline.store.Nope  # noqa: B018


def test_unchanged_data_add_loads_no_sqlalchemy_and_no_progress_bar(tmp_path: Path) -> None:
    entry = Path(sys.executable).parent / "loopline"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    subprocess.run([entry, "init", "."], cwd=tmp_path, env=env, check=True, capture_output=True)
    # init still creates the database, though the library now opens it on first use
    with contextlib.closing(sqlite3.connect(tmp_path / ".loopline" / "loopline.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(20):
        (folder / f"{index}.bin").write_bytes(bytes([index]) * 300)
    add = [entry, "data", "add", "images"]
    first = subprocess.run(add, cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    assert "added images@1 (20 files" in first.stdout
    code = (
        "import contextlib, io, sys\n"
        "from loopline.cli.app import run\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    assert run(['data', 'add', 'images']) == 0\n"
        "assert 'unchanged: images@1 already holds this content' in out.getvalue()\n"
        "heavy = ('sqlalchemy', 'alembic', 'psycopg', 'pandas', 'pyarrow', 'rich.progress')\n"
        "print(','.join(name for name in heavy if name in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ""  # none of them


GROUP_COMMANDS = """
import contextlib, io, json, pkgutil, sys, importlib
import loopline.cli
from loopline.cli.app import COMMANDS, app, run
if sys.argv[1] == "all":  # every CLI module imported first: what an eager root would see
    for module in pkgutil.iter_modules(loopline.cli.__path__):
        importlib.import_module(f"loopline.cli.{module.name}")
    names = list(COMMANDS)
else:
    names = [sys.argv[1]]
import typer.main
group = typer.main.get_command(app)
found = {}
for name in names:
    command = group.get_command(None, name)
    found[name] = sorted(getattr(command, "commands", {}))
print(json.dumps(found))
"""


def test_each_command_built_alone_has_every_sub_command() -> None:
    """A module that adds commands to another's sub-app must be named in COMMANDS."""
    from loopline.cli.app import COMMANDS

    def built(which: str) -> dict[str, list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", GROUP_COMMANDS, which],
            capture_output=True,
            text=True,
            check=True,
        )
        found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
        return found

    eager = built("all")
    assert "evaluate" in eager["models"] and "add" in eager["data"]
    for name in COMMANDS:
        if eager[name]:  # a group
            assert built(name) == {name: eager[name]}
