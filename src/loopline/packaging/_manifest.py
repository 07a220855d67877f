"""The `loopline-model.yaml` manifest: what a package holds and how to load it.

    format_version: 1
    flavor: sklearn
    model_class: sklearn.pipeline.Pipeline
    framework: {name: scikit-learn, version: 1.9.1}
    ...
    files:
      model.skops: {blake3: <64 hex>, size: 12345}

Every file of the package except the manifest is listed with its BLAKE3 hash and size;
`verify_package` checks them, and loading reads only listed files. A package holds
regular files only: a symbolic link (or a folder on the way that is one) is refused,
never followed, so a package cannot make the loader read a file outside it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import blake3

from loopline.errors import CorruptedData, InvalidInput, InvalidPath, NotFound
from loopline.packaging._signature import Signature
from loopline.pathnames import control_folder, validate_logical_path

MANIFEST_NAME = "loopline-model.yaml"
FORMAT_VERSION = 1
TASKS = ("classification", "regression")
_HEX = re.compile(r"[0-9a-f]{64}")
# No following links; a FIFO must not block the open (it is refused just after).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_CHUNK = 1 << 20
_HEADER = "# A loopline model package. Every file below is checked against its hash on load.\n"


@dataclass(frozen=True)
class FileEntry:
    """A package file's BLAKE3 hash (64 hex characters) and size in bytes."""

    blake3: str
    size: int


@dataclass(frozen=True)
class ModelManifest:
    """The parsed `loopline-model.yaml` of a model package."""

    flavor: str
    model_class: str
    framework: dict[str, str]
    python_version: str
    loopline_version: str
    created_at: datetime
    signature: Signature
    files: dict[str, FileEntry]
    classes: list[Any] | None = None
    task_hint: str | None = None
    requirements: list[str] = field(default_factory=list)
    pickle: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    flavor_options: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The YAML body, in a readable key order."""
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "model_class": self.model_class,
            "framework": dict(self.framework),
            "python_version": self.python_version,
            "loopline_version": self.loopline_version,
            "created_at": self.created_at.isoformat(),
            "task_hint": self.task_hint,
            "classes": self.classes,
            "signature": self.signature.to_dict(),
            "requirements": list(self.requirements),
            "pickle": self.pickle,
            "flavor_options": dict(self.flavor_options),
            "metadata": dict(self.metadata),
            "files": {
                name: {"blake3": entry.blake3, "size": entry.size}
                for name, entry in sorted(self.files.items())
            },
        }

    @classmethod
    def from_dict(cls, body: Any) -> ModelManifest:
        """Parse and validate a manifest body; InvalidInput names the first bad field."""
        if not isinstance(body, Mapping):
            raise InvalidInput(f"the manifest must be a mapping, got {type(body).__name__}")
        version = _field(body, "format_version", int)
        if version != FORMAT_VERSION:
            raise InvalidInput(
                f"manifest format_version {version} is not supported (this loopline reads "
                f"{FORMAT_VERSION})",
                hint="upgrade loopline" if version > FORMAT_VERSION else None,
            )
        framework = _field(body, "framework", Mapping)
        if not all(isinstance(framework.get(key), str) for key in ("name", "version")):
            raise InvalidInput("manifest field 'framework' needs a name and a version string")
        task = body.get("task_hint")
        if task is not None and task not in TASKS:
            raise InvalidInput(f"manifest field 'task_hint' must be one of {TASKS} or null")
        requirements = _field(body, "requirements", list, default=[])
        if not all(isinstance(line, str) for line in requirements):
            raise InvalidInput("manifest field 'requirements' must be a list of strings")
        classes = _field(body, "classes", list, default=None)
        return cls(
            flavor=_field(body, "flavor", str),
            model_class=_field(body, "model_class", str),
            framework={"name": framework["name"], "version": framework["version"]},
            python_version=_field(body, "python_version", str),
            loopline_version=_field(body, "loopline_version", str),
            created_at=_timestamp(body.get("created_at")),
            signature=Signature.from_dict(body.get("signature")),
            files=_files(_field(body, "files", Mapping)),
            classes=None if classes is None else list(classes),
            task_hint=task,
            requirements=list(requirements),
            pickle=_field(body, "pickle", bool),
            metadata=dict(_field(body, "metadata", Mapping, default={})),
            flavor_options=dict(_field(body, "flavor_options", Mapping, default={})),
        )


def _field(body: Mapping[str, Any], key: str, kind: type, *, default: Any = ...) -> Any:
    value = body.get(key, default)
    if value is ...:
        raise InvalidInput(f"the manifest has no '{key}' field")
    if default is not ... and (value is default or value is None):
        return default  # an optional field that is absent or null
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidInput(
            f"manifest field '{key}' must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _timestamp(value: Any) -> datetime:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"manifest field 'created_at' is not a timestamp: {value!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _files(body: Mapping[str, Any]) -> dict[str, FileEntry]:
    files = {}
    for name, entry in body.items():
        check_relative(name)
        digest = entry.get("blake3") if isinstance(entry, Mapping) else None
        size = entry.get("size") if isinstance(entry, Mapping) else None
        if not (isinstance(digest, str) and _HEX.fullmatch(digest)):
            raise InvalidInput(f"manifest entry for '{name}' needs a blake3 hash of 64 hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"manifest entry for '{name}' needs a size in bytes")
        files[name] = FileEntry(digest, size)
    return files


def check_relative(name: Any) -> str:
    """A file name listed in a manifest: relative, POSIX, inside the package, not the
    manifest, in the normal form `validate_logical_path` gives, and meeting its rules
    (no `..`, no URI spelling, no `%XX`, no `~`, no control character), outside `.git`
    and `.loopline` and printable: the rules of every other path that comes from data.
    """
    reason = None
    try:
        normalized = validate_logical_path(name)
    except InvalidPath as exc:
        reason = exc.message
    else:
        if normalized != name or not name.isprintable() or control_folder(name) is not None:
            reason = "not a plain relative name"
        elif name == MANIFEST_NAME:
            reason = "the manifest itself"
    if reason is not None:
        raise InvalidInput(f"the manifest lists an invalid file name: {name!r} ({reason})")
    return str(name)


def read_manifest(path: str | Path) -> ModelManifest:
    """Parse and validate the manifest of the package at `path` (a folder).

    Raises NotFound if `path` does not exist, InvalidInput if it has no manifest or
    the manifest is malformed, CorruptedData if the manifest is a symbolic link.
    """
    import yaml

    folder = Path(path)
    file = folder / MANIFEST_NAME
    if not folder.exists():
        raise NotFound(f"no model package at {folder}")
    try:
        with open_regular(folder, MANIFEST_NAME) as opened:
            text = opened.read().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidInput(
            f"{folder} is not a loopline model package: it has no {MANIFEST_NAME}"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}") from exc
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    try:
        return ModelManifest.from_dict(body)
    except InvalidInput as exc:
        raise InvalidInput(f"{file}: {exc.message}", hint=exc.hint) from exc


def write_manifest(folder: Path, manifest: ModelManifest) -> None:
    """Write `loopline-model.yaml` into `folder`; InvalidInput if metadata is not plain data."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """Short mappings (a column, a file entry) on one line each, for readability."""

    def one_line(dumper: yaml.SafeDumper, data: _OneLine) -> yaml.Node:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)

    Dumper.add_representer(_OneLine, one_line)
    body = manifest.to_dict()
    for key in ("inputs", "outputs"):
        body["signature"][key] = [_OneLine(column) for column in body["signature"][key]]
    body["files"] = {name: _OneLine(entry) for name, entry in body["files"].items()}
    try:
        text = yaml.dump(
            body, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
    except yaml.YAMLError as exc:
        value = exc.args[1] if len(exc.args) > 1 else exc
        raise InvalidInput(
            f"the manifest cannot hold a {type(value).__name__} value: {value!r}",
            hint="metadata and classes must be plain str, int, float, bool, list and dict values",
        ) from exc
    (folder / MANIFEST_NAME).write_text(_HEADER + text, encoding="utf-8")


class _OneLine(dict[str, Any]):
    """A mapping the manifest writes in YAML flow style: {name: age, type: long}."""


def hash_file(path: Path) -> FileEntry:
    """The BLAKE3 hash and size of a file, read in 1 MiB chunks."""
    with open(path, "rb") as file:
        return _hash_stream(file)


def _hash_stream(file: BinaryIO) -> FileEntry:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    size = 0
    while chunk := file.read(_CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return FileEntry(hasher.hexdigest(), size)


def open_regular(folder: Path, name: str) -> BinaryIO:
    """Open the package file `name` for reading, refusing anything but a regular file
    reached without a symbolic link below `folder`.

    Raises CorruptedData for a link or a special file, FileNotFoundError if it is absent.
    """
    path = folder
    for part in PurePosixPath(name).parts:
        path = path / part
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise CorruptedData(
                f"'{name}' in the model package {folder} is a symbolic link; a package "
                "holds regular files only",
                hint="the package was modified; save the model again",
            )
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:  # ELOOP: a link swapped in since the check above
        if exc.errno == errno.ELOOP:
            raise CorruptedData(f"'{name}' in the model package {folder} is a link") from exc
        raise
    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        raise CorruptedData(
            f"'{name}' in the model package {folder} is not a regular file",
            hint="the package was modified; save the model again",
        )
    return file


def verify_package(path: str | Path) -> ModelManifest:
    """Check every file the manifest lists against its recorded BLAKE3 hash and size.

    Files the manifest does not list are ignored (and never loaded). Raises
    CorruptedData naming the first file that is missing or does not match.
    """
    manifest = read_manifest(path)
    read_verified(Path(path), manifest, keep=())
    return manifest


def read_verified(folder: Path, manifest: ModelManifest, keep: Iterable[str]) -> dict[str, bytes]:
    """Verify every listed file; return the bytes of those in `keep`, read once and hashed.

    Loading from these bytes, not from the path, means the model that is loaded is the
    one that was verified, even if the file changes in between.
    """
    wanted = set(keep)
    unlisted = sorted(wanted - manifest.files.keys())
    if unlisted:
        raise CorruptedData(f"the manifest in {folder} does not list the model file {unlisted[0]}")
    contents = {}
    for name, expected in sorted(manifest.files.items()):
        try:
            with open_regular(folder, name) as file:
                if name in wanted:
                    data = file.read()
                    digest = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
                    actual = FileEntry(digest, len(data))
                    contents[name] = data
                else:
                    actual = _hash_stream(file)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise CorruptedData(
                f"model file '{name}' is listed in the manifest of {folder} but missing"
            ) from exc
        if actual != expected:
            raise CorruptedData(
                f"model file '{name}' does not match its manifest hash in {folder} "
                f"(expected {expected.size} bytes hashing to {expected.blake3[:12]}…, "
                f"found {actual.size} bytes hashing to {actual.blake3[:12]}…)",
                hint="the package was modified or damaged; save the model again",
            )
    return contents


def utc_now() -> datetime:
    """The current time, UTC, to the second (what `created_at` records)."""
    return datetime.now(UTC).replace(microsecond=0)
