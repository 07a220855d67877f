"""`loopline serve REF` with a model that cannot load exits non-zero at start, with the
error's exit code and one line, instead of a server answering /health/ready 503 forever.

Real `loopline serve` processes; the refused model is a package holding a skops
reference to `os.system` (tests/security/test_hostile_models.py builds it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.serving import free_port
from security.test_hostile_models import hostile_package, register

LOOPLINE = str(Path(sys.executable).parent / "loopline")


def serve(project: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["COLUMNS"] = "300"
    # a server that stays up would hit the timeout: that is the failure this test catches
    return subprocess.run(
        [LOOPLINE, "serve", ref, "--port", str(free_port()), *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def refused_model_project(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A SQLite project holding `hostile/1`, a package the loader refuses (UnsafeModel)."""
    from loopline.config import init_project
    from loopline.project import close, configure

    root = tmp_path / "proj"
    root.mkdir()
    init_project(root)
    clean_env.chdir(root)
    opened = configure(project=root)
    try:
        register(hostile_package("skops_os_system", tmp_path), opened)
    finally:
        close()
    return root


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_of_a_model_that_cannot_load_exits_at_start(
    refused_model_project: Path, workers: str
) -> None:
    result = serve(refused_model_project, "hostile@latest", "--workers", workers)
    out = result.stdout + result.stderr
    assert result.returncode == 9, out  # UnsafeModel's exit code
    assert "system" in out and "Traceback" not in out
    assert "prediction service on" not in out  # no server was started


def test_serve_of_an_unknown_model_exits_at_start(refused_model_project: Path) -> None:
    result = serve(refused_model_project, "nosuchmodel")
    out = result.stdout + result.stderr
    assert result.returncode == 3, out  # NotFound
    assert "nosuchmodel" in out and "Traceback" not in out
