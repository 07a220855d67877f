"""Model packages in the artifact store: a package is its files (each a blob) plus an
index blob (path -> blob id, size) whose hash names the package. Loading materializes
the package once into `.loopline/cache/models/<package hash>/` (written to a temporary
folder, renamed into place), where the package's own manifest hashes are checked again
on every load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline.errors import CorruptedData, InvalidInput
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


def materialize(package_hash: str, opened: Stores, *, refresh: bool = False) -> Path:
    """The package's files in the local cache, fetched (and verified) on first use."""
    cache = opened.settings.state_dir / "cache" / "models"
    target = cache / package_hash
    if target.is_dir() and not refresh:
        return target
    package = read_package(package_hash, opened)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{package_hash[:12]}-", dir=cache))
    try:
        for path, (blob, _size) in package.files.items():
            opened.artifacts.get_file(blob, resolve_under(staging, path))
        if refresh and target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            # another process materialized the same package first: theirs is as good
            if not target.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def check_artifact_path(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"artifact_path must be a non-empty string, got {path!r}")
    return validate_logical_path(path)
