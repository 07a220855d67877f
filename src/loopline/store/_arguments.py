"""Checking what callers pass to `ArtifactStore`: hashes, paths, lists, worker counts.

Each raises InvalidInput (or CorruptedData for a chunk list that does not match its
file's id) naming the method, so that a wrong argument never reaches a back-end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from loopline.errors import CorruptedData, InvalidInput
from loopline.store._backend import Blob, StoredFile

T = TypeVar("T")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(
            f"not a blob hash: {digest!r}", hint="expected 64 lowercase hexadecimal characters"
        )
    return digest


def check_item(item: tuple[StoredFile, str | os.PathLike[str]]) -> tuple[StoredFile, str]:
    """Validate one `(StoredFile, destination)` pair, including a chunked file's id."""
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], StoredFile)):
        raise InvalidInput(f"get_files expects (StoredFile, path) pairs, got {item!r}")
    stored, dest = item[0], as_str_path(item[1], "get_files")
    check_digest(stored.hash)
    for blob in stored.blobs:
        if not isinstance(blob, Blob) or not isinstance(blob.size, int) or blob.size < 0:
            raise InvalidInput(f"not a blob: {blob!r} (restoring {dest})")
        check_digest(blob.hash)
    if stored.chunks and not _chunk_list_matches(stored):
        raise CorruptedData(
            f"cannot restore {dest}: its chunk list does not match its id {stored.hash}",
            hint="the record of this file was altered; restore it from the dataset version",
        )
    return stored, dest


def _chunk_list_matches(stored: StoredFile) -> bool:
    from loopline.store._chunks import chunked_file_id

    total = sum(chunk.size for chunk in stored.chunks)
    return total == stored.size and chunked_file_id(stored.chunks) == stored.hash


def as_str_path(value: str | os.PathLike[str], method: str) -> str:
    """Like `_as_path`, as a str: building thousands of Path objects is slow."""
    try:
        path = os.fspath(value)
    except TypeError:
        path = None
    if not isinstance(path, str):
        raise InvalidInput(f"{method} expects a file path, got {type(value).__name__}")
    return path


def as_path(value: str | os.PathLike[str], method: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(f"{method} expects a file path, got {type(value).__name__}")
    return Path(value)


def sequence(values: Sequence[T], method: str) -> Sequence[T]:
    if isinstance(values, (str, bytes, os.PathLike)) or not isinstance(values, Sequence):
        raise InvalidInput(f"{method} expects a list, got {type(values).__name__}")
    return values


def iterable(values: Iterable[str], method: str) -> Iterable[str]:
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{method} expects an iterable of hashes, got a single string")
    return values


def workers_count(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer, got {workers!r}")
    return workers
