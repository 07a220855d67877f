"""Pointer files: `NAME.loopline` beside the data pins a dataset version in git.

    # loopline dataset pointer: commit this file; the data itself is in .gitignore
    dataset: credit.csv
    version: 3
    manifest: 5f0c...e9        # the content, whatever the database says
    path: credit.csv           # the data, relative to this file

`add` writes it and lists the data path in the `.gitignore` of the same folder;
`checkout POINTER` restores exactly the manifest named here.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline.errors import InvalidInput, NotFound
from loopline.store import DatasetVersion, check_dataset_name, validate_logical_path

SUFFIX = ".loopline"
_HEADER = "# loopline dataset pointer: commit this file; the data itself is in .gitignore\n"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pointer:
    file: Path
    dataset: str
    version: int
    manifest: str
    path: str  # the data, relative to the pointer's folder

    @property
    def data_path(self) -> Path:
        return self.file.parent / self.path


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
    if not fields["version"].isdigit() or not _HASH.match(fields["manifest"]):
        raise InvalidInput(f"{file} has a malformed version or manifest hash")
    relative = validate_logical_path(fields["path"])
    if "/" in relative:
        raise InvalidInput(f"{file}: path must name a file or folder beside the pointer")
    return Pointer(
        file=file.resolve(),
        dataset=check_dataset_name(fields["dataset"]),
        version=int(fields["version"]),
        manifest=fields["manifest"],
        path=relative,
    )


def _ignore(source: Path) -> None:
    """List the data in its folder's .gitignore, so that only the pointer is committed."""
    gitignore = source.parent / ".gitignore"
    line = f"/{source.name}"
    existing = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if line not in existing:
        with gitignore.open("a", encoding="utf-8") as fh:
            if existing and existing[-1] != "":
                fh.write("\n")
            fh.write(line + "\n")
