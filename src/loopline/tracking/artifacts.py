"""A run's artifacts: files stored as content-addressed blobs, listed by a manifest of
logical paths -> hashes (the run's output links of kind "artifact").

Symbolic links are not followed unless the caller asks (`follow_links=True`): a folder
holding a link to `/etc/passwd` or `~/.ssh` would otherwise store that file's content
under an innocent name, for anyone who can read the run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput, InvalidPath, NotFound
from loopline.project import Stores, stores
from loopline.store import (
    Direction,
    LinkKind,
    RunLink,
    control_folder,
    resolve_under,
    validate_logical_path,
)

if TYPE_CHECKING:
    from loopline.store import BlobReader

MAX_ARTIFACT_PATH = 1024  # the width of the stored name


def log_artifact_for_run(
    run_id: str,
    local_path: str | Path,
    artifact_path: str | None = None,
    *,
    follow_links: bool = False,
    stores: Stores | None = None,
) -> list[str]:
    """Store a file or a directory's files under the run; returns the logical paths.

    A file keeps its name (`plots/roc.png` -> `roc.png`); a directory keeps its own name
    and layout (`plots/` -> `plots/roc.png`, ...). `artifact_path` files them under a
    folder. Logging a path again replaces the run's entry; the old blob stays stored.

    Raises:
        InvalidPath: `local_path` is, or the folder holds, a symbolic link (unless
            `follow_links=True`, which stores what each link points to), or a name that
            could not be restored (`.git`, `.loopline`, `~x`, `%2e`, ...).
    """
    opened = stores or _stores()
    given = Path(local_path)
    if not given.exists() and not _is_link(given):
        raise NotFound(f"no file or directory at {str(local_path)!r}")
    prefix = validate_logical_path(artifact_path) + "/" if artifact_path else ""
    planned = [
        (file, _logical(prefix + relative)) for file, relative in _files(given, follow_links)
    ]
    entries: list[tuple[str, str, int | None]] = []
    for file, logical in planned:  # every name is checked before anything is stored
        blob = opened.artifacts.put_file(file)
        entries.append((logical, blob.hash, blob.size))
    opened.metadata.runs.add_links(run_id, Direction.OUTPUT, LinkKind.ARTIFACT, entries)
    return sorted(name for name, _, _ in entries)


def list_artifacts(run_id: str, prefix: str | None = None) -> list[RunLink]:
    """The run's artifact manifest (path, hash, size), optionally under a folder."""
    folder = validate_logical_path(prefix) if prefix else None
    metadata = _stores().metadata
    links = metadata.runs.list_links(
        metadata.runs.resolve_run_id(run_id), Direction.OUTPUT, LinkKind.ARTIFACT
    )
    if folder is None:
        return links
    return [link for link in links if link.name == folder or link.name.startswith(folder + "/")]


def open_artifact(run_id: str, path: str) -> tuple[RunLink, BlobReader]:
    """The run's artifact at `path` (one file of its manifest, named exactly) and a reader
    of its verified bytes: only a blob the run lists under that name is ever opened, so no
    path, however spelled, reads another run's files or anything outside the store.

    Raises:
        InvalidPath: `path` is not a logical path (`..`, a leading `/`, ...).
        NotFound: no such run, or the run has no file at `path` (a folder is no file).
    """
    logical = validate_logical_path(path)
    metadata = _stores().metadata
    run_id = metadata.runs.resolve_run_id(run_id)
    for link in metadata.runs.list_links(run_id, Direction.OUTPUT, LinkKind.ARTIFACT):
        if link.name == logical:
            return link, _stores().artifacts.open_blob(link.ref)
    raise NotFound(f"run {run_id} has no artifact {logical!r}")


def download_artifacts(run_id: str, path: str, dest: str | Path) -> list[Path]:
    """Write the artifact at `path` (a file, or every file under a folder) into `dest`.

    Files keep their paths relative to `path`'s parent folder, so `plots` lands as
    `dest/plots/...` and `plots/roc.png` as `dest/roc.png`. Every blob is verified.
    """
    opened = _stores()
    logical = validate_logical_path(path)
    run_id = opened.metadata.runs.resolve_run_id(run_id)
    matches = list_artifacts(run_id, logical)
    if not matches:
        raise NotFound(
            f"run {run_id} has no artifact {logical!r}",
            hint=f"`loopline runs show {run_id[:8]}` lists its artifacts",
        )
    base = logical.rsplit("/", 1)[0] + "/" if "/" in logical else ""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for link in matches:
        target = resolve_under(root, link.name[len(base) :])
        opened.artifacts.get_file(link.ref, target)
        written.append(target)
    return written


def _logical(path: str) -> str:
    logical = validate_logical_path(path)
    if len(logical) > MAX_ARTIFACT_PATH:
        raise InvalidPath(f"artifact path {logical[:60]!r}... is longer than {MAX_ARTIFACT_PATH}")
    folder = control_folder(logical)
    if folder is not None:
        raise InvalidPath(
            f"artifact path {logical!r} holds {folder!r}, a control folder (git's or "
            "loopline's): it could never be downloaded",
            hint="log the files without that folder",
        )
    return logical


def _files(given: Path, follow_links: bool) -> Iterator[tuple[Path, str]]:
    """(file, path relative to the logged folder's parent) of every regular file.

    The names are the ones the user sees (a followed link keeps its own name); with
    `follow_links`, a link back to a folder being walked is a loop and is refused.
    """
    _refuse_link(given, follow_links)
    name = Path(os.path.abspath(given)).name  # `.` logs the current folder by its name
    if given.is_file():
        yield given, name
        return
    if not given.is_dir():
        raise InvalidInput(f"{str(given)!r} is neither a file nor a directory")
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [
        (given, name, frozenset({_identity(given)}))
    ]
    while stack:
        folder, relative, ancestors = stack.pop()
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            path = Path(entry.path)
            _refuse_link(path, follow_links)
            if entry.is_symlink() and not path.exists():
                raise NotFound(f"{path} is a symbolic link to nothing")
            if entry.is_dir():  # follows a link only when follow_links let it through
                identity = _identity(path)
                if identity in ancestors:
                    raise InvalidInput(f"{path} links back to a folder that holds it (a loop)")
                stack.append((path, f"{relative}/{entry.name}", ancestors | {identity}))
            elif entry.is_file():
                yield path, f"{relative}/{entry.name}"


def _refuse_link(path: Path, follow_links: bool) -> None:
    if follow_links or not _is_link(path):
        return
    raise InvalidPath(
        f"{path} is a symbolic link; loopline does not store what links point to",
        hint="pass follow_links=True to store the content it points to",
    )


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _identity(folder: Path) -> tuple[int, int]:
    found = os.stat(folder)
    return found.st_dev, found.st_ino


def _stores() -> Stores:
    return stores()
