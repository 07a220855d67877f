"""What a run records about where it ran: code version, command line, environment.

Captured once per process and reused while unchanged, because a tuning loop starts
thousands of runs and `git status` alone costs a process spawn (~4 ms) per run:
- git state is cached per repository and re-read when anything git would notice may
  have changed: the mtime of `.git/HEAD`, `.git/index`, `.git/packed-refs` or the
  branch's ref file (a commit, checkout, `git add`), or the mtime, size or presence of
  any tracked file (an edit). A file modified within 2 s of the capture is "racily
  clean" (git's own term: a second edit in the same clock tick leaves the mtime
  unchanged), so such a capture is not reused. Repositories with more than
  MAX_STAT_FILES tracked files, or whose `.git` is a file (worktrees, submodules), are
  read with git every time. Outside any repository no git process is started.
- installed packages are re-listed when a `sys.path` directory's mtime changes (an
  install or uninstall adds or removes a `*.dist-info` there).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from loopline.redact import redact_argv

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 10.0
MAX_STAT_FILES = 2_000  # above this, stat-ing the tracked files costs about what git does
RACY_S = 2.0


@dataclass(frozen=True)
class GitState:
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    patch: bytes | None = None  # `git diff HEAD` when dirty


Stamp = tuple[tuple[str, int, int], ...]  # (path, mtime_ns, size); -1, -1 if absent


@dataclass(frozen=True)
class _CachedGit:
    state: GitState
    stamp: Stamp
    files: tuple[str, ...]


_git_cache: dict[Path, _CachedGit] = {}
_listed: dict[Path, tuple[Stamp, tuple[str, ...] | None]] = {}  # by HEAD and index stamp
_cache_lock = threading.Lock()


def git_state(directory: Path) -> GitState:
    """The commit, branch and uncommitted diff of the repository around `directory`.

    Outside a repository, or without git installed, every field is None. Reuses the
    last capture while nothing git would notice has changed (module docstring).
    """
    if "GIT_DIR" in os.environ or "GIT_WORK_TREE" in os.environ:
        return _read_git_state(directory)  # git is told where to look: ask it
    root = _repository_root(directory)
    if root is None:
        return GitState()
    if not (root / ".git").is_dir():
        return _read_git_state(directory)
    with _cache_lock:
        cached = _git_cache.get(root)
    if cached is not None and _stamp(root, cached.files) == cached.stamp:
        return cached.state
    started = time.time()
    state = _read_git_state(directory)
    files = _tracked_files(root)
    if files is not None:
        stamp = _stamp(root, files)
        if all(mtime < (started - RACY_S) * 1e9 for _, mtime, _ in stamp):
            with _cache_lock:
                _git_cache[root] = _CachedGit(state, stamp, files)
    return state


_GIT_FILES = (".git/HEAD", ".git/index", ".git/packed-refs", ".git/refs/heads")


def _repository_root(directory: Path) -> Path | None:
    """The nearest folder at or above `directory` holding `.git`, as git looks for it."""
    current = directory.resolve()
    for folder in (current, *current.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _tracked_files(root: Path) -> tuple[str, ...] | None:
    """The tracked files (with the current branch's ref file), or None when too many.

    Listed again only when HEAD or the index changed: the list is the index's.
    """
    key = _stamp(root, _GIT_FILES[:2])
    with _cache_lock:
        known = _listed.get(root)
    if known is not None and known[0] == key:
        return known[1]
    files = _list_tracked_files(root)
    with _cache_lock:
        _listed[root] = (key, files)
    return files


def _list_tracked_files(root: Path) -> tuple[str, ...] | None:
    listed = _git(root, "ls-files", "-z")
    if listed is None:
        return None
    names = [n for n in listed.decode("utf-8", "surrogateescape").split("\0") if n]
    if len(names) > MAX_STAT_FILES:
        return None
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text("utf-8").strip()
    except OSError:
        return None
    extra = [".git/" + ref[5:]] if ref.startswith("ref: ") else []
    return (*_GIT_FILES, *extra, *names)


def _stamp(root: Path, files: tuple[str, ...]) -> Stamp:
    out = []
    prefix = str(root) + os.sep
    for name in files:
        try:
            info = os.stat(prefix + name)
        except OSError:
            out.append((name, -1, -1))
        else:
            out.append((name, info.st_mtime_ns, info.st_size))
    return tuple(out)


def _read_git_state(directory: Path) -> GitState:
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


_packages: tuple[tuple[tuple[str, int], ...], str] | None = None


def installed_packages() -> str:
    """`name==version` of every installed distribution, sorted: a requirements file.

    Listed again only when a `sys.path` folder changed (module docstring).
    """
    global _packages
    stamp = tuple((entry, _mtime_ns(entry)) for entry in sys.path)
    cached = _packages
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = _list_packages()
    _packages = (stamp, text)
    return text


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return -1


def _list_packages() -> str:
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
