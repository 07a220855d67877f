"""Pointer files: `NAME.loopline` beside the data pins a dataset version in git
(`credit.loopline` beside `credit.csv`).

    # loopline dataset pointer: commit this file; the data itself is in .gitignore
    dataset: credit
    version: 3
    manifest: 5f0c...e9        # the content, whatever the database says
    path: credit.csv           # the data, relative to this file

`add` writes it and lists the data path in the `.gitignore` of the same folder;
`checkout POINTER` restores exactly the manifest named here.

A pointer is committed data, so anyone who can push may have written it: `path:` must
be one plain name beside the pointer, the pointer's folder must lie inside the project,
and the destination goes through `resolve_under` (no `.git`, no `.loopline`, no
symbolic link on the way, nothing outside the project).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline.errors import InvalidInput, InvalidPath, NotFound
from loopline.store import (
    DatasetVersion,
    check_dataset_name,
    control_folder,
    resolve_under,
    validate_logical_path,
)

SUFFIX = ".loopline"
_HEADER = "# loopline dataset pointer: commit this file; the data itself is in .gitignore\n"
_HASH = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class Pointer:
    file: Path  # absolute, links not resolved: a linked folder on the way must stay visible
    dataset: str
    version: int
    manifest: str
    path: str  # the data, relative to the pointer's folder


def data_path(pointer: Pointer, root: Path) -> Path:
    """Where the pointer's data goes inside the project at `root`, checked by the one
    resolver; InvalidPath if the pointer lies outside the project, or the destination
    is a control folder, runs through a symbolic link or leaves the project."""
    base = root.resolve()
    folder = _relative_folder(pointer.file.parent, base)
    if folder is None:
        raise InvalidPath(
            f"pointer {pointer.file} is outside the project at {base}",
            hint="check out pointers that lie inside the project (not behind a link)",
        )
    return resolve_under(base, pointer.path if folder == "." else f"{folder}/{pointer.path}")


def _relative_folder(folder: Path, base: Path) -> str | None:
    """`folder` relative to the project root `base`, as written (links not followed).

    The nearest ancestor that *is* the root (possibly reached through a link of the
    user's own, such as macOS's /tmp) anchors it; what lies below stays lexical, so
    `resolve_under` sees, and refuses, a linked folder between the root and the pointer.
    """
    for ancestor in (folder, *folder.parents):
        if ancestor == base or _same(ancestor, base):
            return folder.relative_to(ancestor).as_posix()
    return None


def _same(path: Path, base: Path) -> bool:
    try:
        return path.resolve() == base
    except (OSError, RuntimeError):
        return False


def pointer_path(source: Path, dataset: str) -> Path:
    return source.parent / f"{dataset}{SUFFIX}"


def write(source: Path, version: DatasetVersion) -> Path:
    """Write (atomically) the pointer for `version` of the data at `source`."""
    target = pointer_path(source, version.dataset)
    text = (
        f"{_HEADER}dataset: {version.dataset}\nversion: {version.version}\n"
        f"manifest: {version.manifest_hash}\npath: {source.name}\n"
    )
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, target)
    _ignore(source)
    return target


def read(file: Path) -> Pointer:
    """Parse a pointer file strictly; a malformed one is an error naming the file."""
    if not file.is_file():
        raise NotFound(f"no pointer file at {file}")
    fields: dict[str, str] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in ("dataset", "version", "manifest", "path"):
            raise InvalidInput(f"{file}:{number}: not a loopline pointer line: {line!r}")
        fields[key.strip()] = value.split("#", 1)[0].strip()
    missing = {"dataset", "version", "manifest", "path"} - fields.keys()
    if missing:
        raise InvalidInput(f"{file} is missing {', '.join(sorted(missing))}")
    if not _VERSION.fullmatch(fields["version"]) or not _HASH.fullmatch(fields["manifest"]):
        raise InvalidInput(f"{file} has a malformed version or manifest hash")
    relative = validate_logical_path(fields["path"])
    if "/" in relative:
        raise InvalidInput(f"{file}: path must name a file or folder beside the pointer")
    if control_folder(relative) is not None:
        raise InvalidPath(
            f"{file}: path {relative!r} names a control folder (git's or loopline's); "
            "loopline never restores data there"
        )
    return Pointer(
        file=Path(os.path.abspath(file)),
        dataset=check_dataset_name(fields["dataset"]),
        version=int(fields["version"]),
        manifest=fields["manifest"],
        path=relative,
    )


def _ignore(source: Path) -> None:
    """List the data in its folder's .gitignore, so that only the pointer is committed."""
    gitignore = source.parent / ".gitignore"
    if _is_link(gitignore):  # appending would write wherever the link points
        raise InvalidPath(
            f"{gitignore} is a symbolic link; loopline does not write through links",
            hint=f"replace it by a real file, then list /{source.name} in it",
        )
    line = f"/{source.name}"
    existing = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if line not in existing:
        with gitignore.open("a", encoding="utf-8") as fh:
            if existing and existing[-1] != "":
                fh.write("\n")
            fh.write(line + "\n")


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
