"""Adding dataset versions and resolving references to them.

`add(path)` turns a file or a folder into a new immutable version of a dataset: each
file is stored once (content-addressed, packed, large files chunked), the version's
manifest lists relative paths -> content ids, tabular data gets a schema and profile,
and a pointer file `NAME.loopline` beside the data pins the version in git. A file's
dataset is named without its extension (`credit.csv` -> `credit`; see `_names`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopline.config import current_user
from loopline.data import _manifest, _names, _pointer
from loopline.data._cache import StatCache
from loopline.errors import Conflict, InvalidInput, InvalidPath, NotFound
from loopline.lineage import record_output
from loopline.project import Stores, stores
from loopline.store import (
    Dataset,
    DatasetVersion,
    LinkKind,
    StoredFile,
    check_dataset_name,
    control_folder,
    quick_latest_version,
    validate_logical_path,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
_REF = re.compile(r"(?P<name>[^@]+)(?:@(?P<version>[^@]+))?")


@dataclass(frozen=True)
class AddResult:
    version: DatasetVersion
    created: bool  # False: the content equals the latest version's, nothing new was made
    hashed_files: int  # files read and hashed (the others were unchanged since last add)
    pointer: Path
    profile_error: str | None = None  # why tabular files could not be profiled, if so


def add(
    path: str | Path,
    *,
    name: str | None = None,
    message: str | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> AddResult:
    """Make `path` (a file or folder inside the project) a new version of dataset `name`
    (default: the file name without its extension, `credit.csv` -> `credit`; a folder's
    name as it is).

    An unchanged dataset makes no new version. Files whose size, mtime and inode are
    unchanged since they were last added are not read again. `on_total(bytes)` is called
    once with the bytes to be hashed, then `progress(n)` as they are.
    """
    opened = stores()
    source = _inside_project(Path(path), opened)
    dataset = check_dataset_name(name) if name is not None else _default_name(source, opened)
    files = _list_files(source)
    stored, hashed = _store_files(opened, files, progress, on_total)
    manifest = _manifest.build(
        [rel for _, rel, _ in files], [stored[path] for path, _, _ in files], folder=source.is_dir()
    )
    version, created, problem = _record(opened, dataset, source, manifest, message, files)
    pointer = _pointer.write(source, version)
    if created:
        record_output(LinkKind.DATASET_VERSION, dataset, version.id, version.total_size)
    return AddResult(version, created, hashed, pointer, problem)


def resolve(ref: str) -> DatasetVersion:
    """The version a reference names: `NAME`, `NAME@3`, `NAME@latest`, `NAME@<hash prefix>`.

    NAME is the dataset's name, or that name up to a file extension when no dataset has the
    exact name (`credit@3` finds a `credit.csv` made by an older loopline, and back).
    """
    name, version = parse_ref(ref)
    datasets = stores().metadata.datasets
    name = _names.stored_name(name, (d.name for d in datasets.list_datasets())) or name
    if version is None or version == "latest":
        return datasets.latest_version(name)
    if version.isascii() and version.isdigit():
        return datasets.get_version(name, int(version))
    return datasets.find_by_hash_prefix(name, version.lower())


def list_datasets() -> list[Dataset]:
    """Every dataset with its latest version number."""
    return stores().metadata.datasets.list_datasets()


def log(name: str) -> list[DatasetVersion]:
    """Every version of dataset `name` (found as `resolve` finds it), newest first."""
    datasets = stores().metadata.datasets
    name = check_dataset_name(name)
    name = _names.stored_name(name, (d.name for d in datasets.list_datasets())) or name
    return datasets.list_versions(name)


def parse_ref(ref: str) -> tuple[str, str | None]:
    if not isinstance(ref, str):
        raise InvalidInput(f"a dataset reference is a string like 'credit@3', got {ref!r}")
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidInput(
            f"invalid dataset reference {ref!r}", hint="use NAME, NAME@3 or NAME@latest"
        )
    return check_dataset_name(match["name"]), match["version"]


def manifest_of(version: DatasetVersion) -> _manifest.Manifest:
    return _manifest.load(stores().artifacts, version.manifest_hash)


def _inside_project(path: Path, opened: Stores) -> Path:
    if not path.exists():
        raise NotFound(f"no file or folder at {str(path)!r}")
    source = path.resolve()
    root = opened.settings.root.resolve()
    if not source.is_relative_to(root):
        raise InvalidInput(
            f"{source} is outside the project at {root}",
            hint="datasets are added from inside the project; copy or move the data in first",
        )
    if source == root or source.is_relative_to(opened.settings.state_dir.resolve()):
        raise InvalidInput(f"cannot add {source}: it is the project itself or its state folder")
    relative = validate_logical_path(source.relative_to(root).as_posix())
    if control_folder(relative) is not None:
        raise InvalidPath(f"cannot add {source}: it lies in a control folder (git's or loopline's)")
    return source


def _default_name(source: Path, opened: Stores) -> str:
    """The dataset a file or folder goes into without --name; refuses to mix two files
    that share a name up to their extension (`credit.csv` and `credit.parquet`)."""
    if source.is_dir():  # before opening the metadata store: see _latest_if_unchanged
        return check_dataset_name(source.name)
    datasets = opened.metadata.datasets
    name = _names.name_for(source.name, (d.name for d in datasets.list_datasets()))
    try:
        latest = datasets.latest_version(name)
    except NotFound:
        return name
    here = source.relative_to(opened.settings.root.resolve()).as_posix()
    if latest.source is not None and latest.source != here:
        raise Conflict(
            f"dataset {name!r} holds {latest.source}, not {here}",
            hint=f"name this one: loopline data add {here} --name NAME",
        )
    return name


def _list_files(source: Path) -> list[tuple[str, str, os.stat_result]]:
    """(path, manifest path, stat) of every regular file, sorted; symlinks are refused,
    and so are names a checkout would refuse to restore (`.git`, `.loopline`, `~x`,
    `%2e`, ...): a version that cannot be checked out is not made.

    Plain strings and os.scandir: pathlib objects cost more than the disk for 20,000 files.
    """
    if source.is_file():
        return [(str(source), validate_logical_path(source.name), _stat(str(source)))]
    found: list[tuple[str, str, os.stat_result]] = []
    folders = [(str(source), "")]
    while folders:
        folder, prefix = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise InvalidInput(
                        f"{entry.path} is a symbolic link; add the file it points to"
                    )
                if control_folder(entry.name) is not None:
                    raise InvalidPath(
                        f"{entry.path} is a control folder (git's or loopline's); "
                        "loopline never restores one, so it cannot be versioned",
                        hint="add the data without it",
                    )
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False) and not entry.name.endswith(
                    _pointer.SUFFIX
                ):
                    relative = validate_logical_path(prefix + entry.name)
                    found.append((entry.path, relative, _stat(entry.path)))
    if not found:
        raise InvalidInput(f"{source} holds no files to add")
    found.sort(key=lambda item: item[1])
    return found


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{path} vanished while it was being added") from None


def _store_files(
    opened: Stores,
    files: Sequence[tuple[str, str, os.stat_result]],
    progress: Progress | None,
    on_total: Callable[[int], None] | None,
) -> tuple[dict[str, StoredFile], int]:
    """The stored content of each file (by path), and how many files had to be read."""
    cache = StatCache(opened.settings.state_dir)
    try:
        stored = cache.lookup([(path, st) for path, _, st in files])
        _drop_missing_blobs(stored, opened)
        todo = [(path, st) for path, _, st in files if path not in stored]
        if on_total is not None:
            on_total(sum(st.st_size for _, st in todo))
        if todo:  # an unchanged folder skips the pack index and thread pool altogether
            paths = [path for path, _ in todo]
            fresh = opened.artifacts.put_files(paths, progress=progress)
            stored.update(zip(paths, fresh, strict=True))
            cache.update([(path, st, stored[path]) for path, st in todo])
    finally:
        cache.close()
    return stored, len(todo)


def _drop_missing_blobs(known: dict[str, StoredFile], opened: Stores) -> None:
    """Cached entries are trusted only if their blobs are still stored."""
    # A file without chunks is its own one blob: no Blob objects for 20,000 small files.
    wanted = {stored.hash for stored in known.values() if not stored.chunks}
    wanted.update(chunk.hash for stored in known.values() for chunk in stored.chunks)
    if not wanted:
        return
    missing = opened.artifacts.missing(wanted)
    if not missing:
        return
    for file, stored in list(known.items()):
        if missing.intersection(blob.hash for blob in stored.blobs):
            del known[file]


def _record(
    opened: Stores,
    dataset: str,
    source: Path,
    manifest: _manifest.Manifest,
    message: str | None,
    files: Sequence[tuple[str, str, os.stat_result]],
) -> tuple[DatasetVersion, bool, str | None]:
    data = manifest.to_bytes()
    manifest_blob = opened.artifacts.put_bytes(data)
    latest = _latest_if_unchanged(opened, dataset, manifest_blob.hash)
    if latest is not None:
        return latest, False, None  # skip profiling an unchanged dataset
    datasets = opened.metadata.datasets
    problem = None
    try:
        schema_json, profile_hash, rows = _profile(opened, [path for path, _, _ in files])
    except InvalidInput as exc:  # malformed tables are still versioned, without a profile
        logger.warning("%s: not profiled: %s", dataset, exc.message)
        schema_json, profile_hash, rows, problem = None, None, None, exc.message
    version, created = datasets.add_version(
        dataset,
        manifest_hash=manifest_blob.hash,
        author=current_user(),
        file_count=len(manifest.entries),
        total_size=manifest.total_size,
        message=message,
        row_count=rows,
        schema_json=schema_json,
        profile_hash=profile_hash,
        source=source.relative_to(opened.settings.root.resolve()).as_posix(),
    )
    return version, created, problem


def _latest_if_unchanged(opened: Stores, dataset: str, manifest_hash: str) -> DatasetVersion | None:
    """The dataset's latest version if it holds exactly this manifest, else None.

    On a SQLite store this is read without SQLAlchemy (`quick_latest_version`), so an
    unchanged re-add never opens the metadata store: importing SQLAlchemy and opening the
    engine cost as much as the rest of the command.
    """
    latest = None
    if opened.settings.server is None:  # with a server, a local SQLite file is not the store
        latest = quick_latest_version(opened.settings.store_uri, dataset)
    if latest is None:
        try:
            latest = opened.metadata.datasets.latest_version(dataset)
        except NotFound:
            return None
    return latest if latest.manifest_hash == manifest_hash else None


def _profile(opened: Stores, files: Sequence[str]) -> tuple[str | None, str | None, int | None]:
    """Schema JSON, profile blob hash and row count of the tabular files, if any."""
    from loopline.data.profile import TABULAR_SUFFIXES, profile_table, tabular_files

    suffixes = tuple(TABULAR_SUFFIXES)
    tables = tabular_files([Path(f) for f in files if f.lower().endswith(suffixes)])
    if not tables:
        return None, None, None
    profile = profile_table(tables)
    body = profile.to_dict()
    schema = json.dumps(body["columns"], separators=(",", ":"))
    blob = opened.artifacts.put_bytes(json.dumps(body, separators=(",", ":")).encode())
    return schema, blob.hash, profile.row_count
