"""Restoring versions: `checkout` puts a version back where it was added, `get` copies it
anywhere, `materialize` keeps a verified read-only copy for loading.

Every destination here is derived from data someone else may have written (a committed
pointer, a version's recorded source, a manifest's file names), so each one goes through
`resolve_under`: never into `.git` or `.loopline`, never through a symbolic link, never
outside the folder it belongs in. `clean` removes only files and links found inside the
checked-out folder, and never follows a link while looking.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from loopline.config import Settings
from loopline.data import _manifest, _pointer
from loopline.data._cache import StatCache
from loopline.data.versions import resolve
from loopline.errors import InvalidInput, InvalidPath
from loopline.project import stores
from loopline.store import DatasetVersion, StoredFile, control_folder, resolve_under

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CheckoutResult:
    version: DatasetVersion | None  # None when the pointer's manifest is not in the database
    target: Path
    restored: int  # files written
    unchanged: int  # files already right
    extra: tuple[Path, ...]  # files in the folder that the version does not have


def checkout(
    target: str | Path, *, clean: bool = False, progress: Progress | None = None
) -> CheckoutResult:
    """Restore the data a pointer file (or a `NAME@VERSION` reference) names.

    With a reference, the data returns to the path it was added from and its pointer is
    rewritten to that version. Files already matching are left alone; every written
    file is hash-verified. Files the version lacks are reported, and removed with
    `clean=True`.
    """
    opened = stores()
    text = str(target)
    if text.endswith(_pointer.SUFFIX) or Path(text).is_file():
        pointer = _pointer.read(Path(text))
        manifest = _manifest.load(opened.artifacts, pointer.manifest)
        versions = opened.metadata.datasets.versions_with_manifest(pointer.manifest)
        version = next((v for v in versions if v.dataset == pointer.dataset), None)
        destination = _pointer.data_path(pointer, opened.settings.root)
    else:
        version = resolve(text)
        if not version.source:
            raise InvalidInput(f"{version.ref} records no source path; use `data get`")
        manifest = _manifest.load(opened.artifacts, version.manifest_hash)
        destination = resolve_under(opened.settings.root, version.source)
    _refuse_project_files(destination, opened.settings)
    root = destination if manifest.folder else destination.parent
    restored, unchanged = _restore(manifest, root, progress)
    extra = _extra_files(manifest, root) if manifest.folder else ()
    if clean:
        for file in extra:
            _remove(file, root)
    if version is not None and not text.endswith(_pointer.SUFFIX):
        _pointer.write(destination, version)
    return CheckoutResult(version, destination, restored, unchanged, extra)


def get(ref: str, dest: str | Path, *, progress: Progress | None = None) -> list[Path]:
    """Copy version `ref` into `dest` (a folder; for a one-file dataset, a file path
    or an existing folder). Returns the files written."""
    version = resolve(ref)
    manifest = _manifest.load(stores().artifacts, version.manifest_hash)
    target = Path(dest)
    if not manifest.folder and not target.is_dir() and not str(dest).endswith(("/", os.sep)):
        entry = manifest.entries[0]
        stores().artifacts.get_files([(entry.file, target)], progress=progress)
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    items = [(entry.file, path) for entry, path in _targets(target, manifest)]
    stores().artifacts.get_files(items, progress=progress)
    return [Path(path) for _, path in items]


def materialize(version: DatasetVersion) -> list[Path]:
    """A verified local copy of `version` under the project's cache, reused while intact."""
    opened = stores()
    folder = opened.settings.state_dir / "cache" / "versions" / version.manifest_hash
    manifest = _manifest.load(opened.artifacts, version.manifest_hash)
    _restore(manifest, folder, None)
    return [folder / e.path for e in manifest.entries]


def _restore(
    manifest: _manifest.Manifest, root: Path, progress: Progress | None
) -> tuple[int, int]:
    """Write the manifest's files under `root`, skipping those already right."""
    opened = stores()
    cache = StatCache(opened.settings.state_dir)
    try:
        targets = _targets(root, manifest)
        present = _present(path for _, path in targets)
        known = cache.lookup(present) if present else {}
        todo = [(e, p) for e, p in targets if _outdated(known.get(p), e)]
        if todo:
            opened.artifacts.get_files([(e.file, p) for e, p in todo], progress=progress)
            cache.update([(p, os.stat(p), e.file) for e, p in todo])
    finally:
        cache.close()
    return len(todo), len(targets) - len(todo)


def _targets(root: Path, manifest: _manifest.Manifest) -> list[tuple[_manifest.Entry, str]]:
    """Where each entry goes, as plain strings (20,000 Path objects cost more than the
    checks). Manifest paths are validated when read (no '..', not absolute, no URI);
    here no entry may name a control folder, and each distinct folder goes through
    `resolve_under` once (no link on the way). A file that is a link is not followed:
    the restore renames the new file over it."""
    checked: dict[str, str] = {}
    targets = []
    for entry in manifest.entries:
        reserved = control_folder(entry.path)
        if reserved is not None:
            raise InvalidPath(
                f"the version lists {entry.path!r}: {reserved!r} is a control folder "
                "(git's or loopline's); loopline never restores data there"
            )
        folder, _, name = entry.path.rpartition("/")
        if folder not in checked:
            checked[folder] = os.path.join(resolve_under(root, folder) if folder else root, "")
        targets.append((entry, checked[folder] + name))
    return targets


def _present(paths: Iterable[str]) -> list[tuple[str, os.stat_result]]:
    """Those of `paths` that exist as regular files, with their stat. Each folder is
    listed once and only the names found are looked up: into an empty folder, no lookup
    per file. A symbolic link counts as absent, so that the restore replaces the link
    (the write renames a new file over it) instead of trusting what it points to."""
    listed: dict[str, frozenset[str] | None] = {}  # None: cannot list, look each up
    present = []
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in listed:
            try:
                listed[folder] = frozenset(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = frozenset()
            except PermissionError:
                listed[folder] = None
        names = listed[folder]
        if names is None or name in names:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                found = os.lstat(path)
                if stat.S_ISREG(found.st_mode):
                    present.append((path, found))
    return present


def _outdated(cached: StoredFile | None, entry: _manifest.Entry) -> bool:
    return cached is None or cached.hash != entry.file.hash


def _extra_files(manifest: _manifest.Manifest, root: Path) -> tuple[Path, ...]:
    """Files and links under `root` that the version does not list.

    Links are never followed: a link (to a file or to a folder, inside or outside the
    project) is itself an entry, reported like a file, and removing it removes the link.
    """
    wanted = {e.path for e in manifest.entries}
    extra = []
    folders = [(str(root), "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append((entry.path, f"{prefix}{entry.name}/"))
            elif prefix + entry.name not in wanted:
                extra.append(entry.path)
    return tuple(Path(file) for file in sorted(extra))


def _remove(file: Path, root: Path) -> None:
    """Unlink one extra file or link, after proving it lies inside `root` (as walked)."""
    if file.parent != root and root not in file.parents:
        raise InvalidPath(f"refusing to remove {file}: it is not inside {root}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(file)  # unlinks a link itself, never its target


def _refuse_project_files(destination: Path, settings: Settings) -> None:
    """A checkout never overwrites (or, with `clean`, empties) the project's own
    configuration or stores, wherever `loopline.toml` puts them inside the project."""
    protected = [settings.root / "loopline.toml", settings.state_dir]
    artifacts = settings.artifact_uri
    if "://" not in artifacts:
        protected.append(Path(artifacts))
    if settings.store_uri.startswith("sqlite:///"):
        protected.append(Path(settings.store_uri[len("sqlite:///") :]))
    root = settings.root.resolve()
    for path in protected:
        place = Path(os.path.abspath(path))
        if not place.is_relative_to(root):
            continue  # a store outside the project (or around it) is not in reach
        if destination == place or place in destination.parents or destination in place.parents:
            raise InvalidPath(
                f"refusing to check out into {destination}: it holds or overlaps {place}, "
                "the project's own configuration or store"
            )
