"""MLflow artifact locations on this machine: where a URI points, and the files under it.

An artifact URI comes from the MLflow store being imported, which is hostile input: a
run whose `artifact_uri` has a `..` segment, or whose folder holds a symbolic link or a
name loopline could not restore, is refused (InvalidPath) before anything of it is
stored. Other schemes (s3://, mlflow-artifacts:, dbfs:) are not on this machine: the
caller marks the run instead.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from loopline.errors import InvalidPath
from loopline.store import validate_logical_path


def local_folder(uri: str, base: Path | None) -> Path | None:
    """The local folder `uri` names (`file:///x`, `/x`, or `x` relative to `base`), or
    None when it is elsewhere (s3://, mlflow-artifacts:/, ...)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        path = unquote(parts.path)
    elif parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        path = uri
    else:
        return None
    if ".." in Path(path).parts or "\x00" in path:
        raise InvalidPath(f"artifact location {uri!r} has a '..' segment: it could escape")
    folder = Path(path)
    if not folder.is_absolute():
        if base is None:
            return None
        folder = base / folder
    return folder


def files_under(folder: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """(logical path, file) of every regular file under `folder`, sorted; nothing if the
    folder does not exist (a run that logged no artifact has none)."""
    if not folder.is_dir():
        return
    _refuse_link(folder)
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in dirs:
            _refuse_link(Path(root) / name)
        for name in sorted(names):
            path = Path(root) / name
            _refuse_link(path)
            relative = path.relative_to(folder).as_posix()
            yield validate_logical_path(prefix + relative), path


def listing(folder: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime ns) of every file under `folder`: part of a run's fingerprint."""
    found = []
    for logical, path in files_under(folder):
        info = path.stat()
        found.append((logical, info.st_size, info.st_mtime_ns))
    return found


def _refuse_link(path: Path) -> None:
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise InvalidPath(f"{path} is a symbolic link; an imported artifact must be a file")
