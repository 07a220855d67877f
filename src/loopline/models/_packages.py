"""Model packages in the artifact store: a package is its files (each a blob) plus an
index blob (path -> blob id, size) whose hash names the package. Loading materializes
the package once into `.loopline/cache/models/<package hash>/` (written to a temporary
folder, renamed into place), where the package's own manifest hashes are checked again
on every load.

The cache never follows a link. Anyone who can write to the cache could otherwise swap
a package's folder for a link to another package's, and `load` would return the other
model: an entry that is not a plain folder is fetched again, `check_cached` refuses a
link or an unknown file anywhere inside, and a replaced entry is moved aside by rename
(which moves a link itself, never what it points to) before it is deleted. A repair
that cannot be written raises; nothing falls back to what is there."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from loopline.errors import CorruptedData, InvalidInput, StoreUnavailable
from loopline.packaging import MANIFEST_NAME
from loopline.project import Stores
from loopline.store import resolve_under, validate_logical_path

log = logging.getLogger(__name__)

INDEX_FORMAT = "loopline-model-package-v1"


@dataclass(frozen=True)
class StoredPackage:
    hash: str  # the index blob's hash: names the package
    files: dict[str, tuple[str, int]]  # relative path -> (blob id, size)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.files.values())


def store_package(folder: Path, opened: Stores) -> StoredPackage:
    """Put every file of a package folder into the artifact store, then its index."""
    files: dict[str, tuple[str, int]] = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            relative = validate_logical_path(path.relative_to(folder).as_posix())
            blob = opened.artifacts.put_file(path)
            files[relative] = (blob.hash, blob.size)
    index = {
        "format": INDEX_FORMAT,
        "files": {path: {"id": blob, "size": size} for path, (blob, size) in files.items()},
    }
    blob = opened.artifacts.put_bytes(json.dumps(index, sort_keys=True).encode())
    return StoredPackage(blob.hash, files)


def read_package(package_hash: str, opened: Stores) -> StoredPackage:
    """The stored index of a package (verified like every blob)."""
    try:
        index = json.loads(opened.artifacts.get_bytes(package_hash))
        if index.get("format") != INDEX_FORMAT:
            raise ValueError(f"unknown format {index.get('format')!r}")
        files = {
            validate_logical_path(path): (str(entry["id"]), int(entry["size"]))
            for path, entry in index["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptedData(f"model package index {package_hash} is malformed: {exc}") from exc
    return StoredPackage(package_hash, files)


def materialize(package: StoredPackage, opened: Stores, *, refresh: bool = False) -> Path:
    """The package's files in the local cache, fetched (and verified) on first use.

    An entry that is not a plain folder (a link, a file) is fetched again; `refresh`
    replaces the entry whatever it holds. The caller checks the result (`check_cached`).
    Raises StoreUnavailable if the cache cannot be written.
    """
    cache = opened.settings.state_dir / "cache" / "models"
    target = cache / package.hash
    if not refresh and _is_folder(target):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{package.hash[:12]}-", dir=cache))
    except OSError as exc:
        raise _unwritable(cache, exc) from exc
    try:
        for path, (blob, _size) in package.files.items():
            opened.artifacts.get_file(blob, resolve_under(staging, path))
        _install(staging, target, replace=refresh)
    except OSError as exc:
        raise _unwritable(cache, exc) from exc
    finally:
        _discard(staging)
    return target


def check_cached(folder: Path, package: StoredPackage) -> None:
    """The cached copy must be the stored package, in plain files: its manifest is the
    stored one (the manifest's hashes are what every model file is checked against), and
    nothing in the folder is a link, a special file or a file the package does not hold.

    Raises CorruptedData (the caller fetches the package again).
    """
    expected = package.files.get(MANIFEST_NAME)
    if expected is None:
        raise CorruptedData(f"model package {package.hash} has no {MANIFEST_NAME}")
    if not _is_folder(folder):
        raise CorruptedData(f"the cached copy of model package {package.hash} is not a folder")
    found = _walk(folder, folder)
    strays = sorted(found - package.files.keys())
    if strays:
        raise CorruptedData(f"the cached copy of {package.hash} holds a file it should not")
    # A regular file (the walk says so); loading opens every file without following links.
    manifest = folder / MANIFEST_NAME
    digest = blake3(manifest.read_bytes()).hexdigest() if MANIFEST_NAME in found else None
    if digest != expected[0]:
        raise CorruptedData(f"{MANIFEST_NAME} in {folder} does not match the stored package")


def _walk(root: Path, folder: Path) -> set[str]:
    """The relative paths of the regular files below `folder`; CorruptedData at a link
    or a special file (never followed)."""
    found: set[str] = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                found |= _walk(root, Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                found.add(Path(entry.path).relative_to(root).as_posix())
            else:
                raise CorruptedData(
                    f"the cached model package {root.name} holds a link or special file: "
                    f"{Path(entry.path).relative_to(root).as_posix()}"
                )
    return found


def _is_folder(path: Path) -> bool:
    """True for a real folder, False for a link (even to a folder), a file or nothing."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _install(staging: Path, target: Path, *, replace: bool) -> None:
    """Rename the fetched `staging` folder to `target`, moving any old entry aside first
    when it is to be replaced or is not a plain folder."""
    if not replace:
        try:
            os.rename(staging, target)
            return
        except OSError:
            if _is_folder(target):
                return  # another process materialized it first; checked like any copy
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.old")
    with contextlib.suppress(FileNotFoundError):  # gone already: nothing to move aside
        os.rename(target, old)  # a link is moved as a link: what it points to is untouched
    try:
        os.rename(staging, target)
    except OSError:
        if not _is_folder(target):  # else another process put a fresh copy there first
            raise
    finally:
        _discard(old)


def _discard(path: Path) -> None:
    """Delete a leftover of ours: a folder with its content, a link or file by itself."""
    try:
        if _is_folder(path):
            shutil.rmtree(path)  # does not follow the links it meets inside
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError as exc:
        log.warning("cannot delete %s from the model cache: %s", path, exc)


def _unwritable(cache: Path, exc: OSError) -> StoreUnavailable:
    log.error("cannot write the model cache %s: %s", cache, exc)
    return StoreUnavailable(
        f"cannot write the local model cache: {exc.strerror or exc}",
        hint="check that the project's .loopline/cache folder is writable",
    )


def check_artifact_path(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"artifact_path must be a non-empty string, got {path!r}")
    return validate_logical_path(path)
