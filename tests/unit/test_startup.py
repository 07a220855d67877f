"""`import loopline` and `loopline --help` load none of the heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

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
