"""A run's artifacts: files stored as content-addressed blobs, listed by a manifest of
logical paths -> hashes (the run's output links of kind "artifact")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from loopline.errors import InvalidInput, NotFound
from loopline.project import Stores, stores
from loopline.store import Direction, LinkKind, RunLink, resolve_under, validate_logical_path


def log_artifact_for_run(
    run_id: str,
    local_path: str | Path,
    artifact_path: str | None = None,
    *,
    stores: Stores | None = None,
) -> list[str]:
    """Store a file or a directory's files under the run; returns the logical paths.

    A file keeps its name (`plots/roc.png` -> `roc.png`); a directory keeps its own name
    and layout (`plots/` -> `plots/roc.png`, ...). `artifact_path` files them under a
    folder. Logging a path again replaces the run's entry; the old blob stays stored.
    """
    opened = stores or _stores()
    if not Path(local_path).exists():
        raise NotFound(f"no file or directory at {str(local_path)!r}")
    source = Path(local_path).resolve()
    prefix = validate_logical_path(artifact_path) + "/" if artifact_path else ""
    entries: list[tuple[str, str, int | None]] = []
    for file, relative in _files(source):
        logical = validate_logical_path(prefix + relative)
        blob = opened.artifacts.put_file(file)
        entries.append((logical, blob.hash, blob.size))
    opened.metadata.add_links(run_id, Direction.OUTPUT, LinkKind.ARTIFACT, entries)
    return sorted(name for name, _, _ in entries)


def list_artifacts(run_id: str, prefix: str | None = None) -> list[RunLink]:
    """The run's artifact manifest (path, hash, size), optionally under a folder."""
    folder = validate_logical_path(prefix) if prefix else None
    metadata = _stores().metadata
    links = metadata.list_links(
        metadata.resolve_run_id(run_id), Direction.OUTPUT, LinkKind.ARTIFACT
    )
    if folder is None:
        return links
    return [link for link in links if link.name == folder or link.name.startswith(folder + "/")]


def download_artifacts(run_id: str, path: str, dest: str | Path) -> list[Path]:
    """Write the artifact at `path` (a file, or every file under a folder) into `dest`.

    Files keep their paths relative to `path`'s parent folder, so `plots` lands as
    `dest/plots/...` and `plots/roc.png` as `dest/roc.png`. Every blob is verified.
    """
    opened = _stores()
    logical = validate_logical_path(path)
    run_id = opened.metadata.resolve_run_id(run_id)
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


def _files(source: Path) -> Iterator[tuple[Path, str]]:
    if source.is_file():
        yield source, source.name
        return
    if not source.is_dir():
        raise InvalidInput(f"{str(source)!r} is neither a file nor a directory")
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            file = Path(folder) / name
            if file.is_file():
                yield file, f"{source.name}/{file.relative_to(source).as_posix()}"


def _stores() -> Stores:
    return stores()
