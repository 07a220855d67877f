"""What a run records about where it ran: code version, command line, environment."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loopline.redact import redact_argv

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class GitState:
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    patch: bytes | None = None  # `git diff HEAD` when dirty


def git_state(directory: Path) -> GitState:
    """The commit, branch and uncommitted diff of the repository around `directory`.

    Outside a repository, or without git installed, every field is None.
    """
    status = _git(directory, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return GitState()
    commit = branch = None
    dirty = False
    for line in status.decode("utf-8", "replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    patch = _git(directory, "diff", "HEAD", "--binary") if dirty and commit else None
    return GitState(commit=commit, branch=branch, dirty=dirty, patch=patch)


def _git(directory: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("git %s failed: %s", args[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


@lru_cache(maxsize=1)
def installed_packages() -> str:
    """`name==version` of every installed distribution, sorted: a requirements file."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.setdefault(name.lower(), f"{name}=={dist.version}")
    return "".join(line + "\n" for _, line in sorted(seen.items()))


def command_line() -> str:
    """The command that started this process, with its secrets masked (loopline.redact).

    Redacted here, before the run is created, so that a `--db-password=...` or an
    `sk-...` key on the command line never reaches the database.
    """
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return shlex.join(redact_argv([program, *sys.argv[1:]]))


def python_version() -> str:
    return platform.python_version()
