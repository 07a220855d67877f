"""Logical artifact paths: the relative POSIX names users give artifacts inside a run.

A logical path names a file inside a store or a download folder, so it must never
climb out of it. Validation is purely lexical (no file system access) and rejects
rather than repairs anything that could escape; `resolve_under` adds the one check
that needs the file system: symlinks on the way that point outside the root.
"""

from __future__ import annotations

import re
from pathlib import Path

from loopline.errors import InvalidPath

# `C:x`, `C:/x`, `C:\x`: a drive letter makes a path absolute (or drive-relative) on Windows.
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def validate_logical_path(path: str) -> str:
    """The normalized form of a relative artifact path, or InvalidPath saying why not.

    Normalizing collapses `.` segments and repeated slashes and drops a trailing slash:
    `./model//weights/` becomes `model/weights`.

    Raises:
        InvalidPath: `path` is not a string, is empty, absolute (`/x`, `C:/x`), holds a
            `..` segment, a backslash or an ASCII control character (NUL included), or
            normalizes to nothing (`.`, `./`).
    """
    if not isinstance(path, str):
        raise InvalidPath(f"artifact path must be a string, got {type(path).__name__}")
    reason = _rejection_reason(path)
    if reason is not None:
        raise InvalidPath(f"invalid artifact path {path!r}: {reason}")
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if not segments:
        raise InvalidPath(f"invalid artifact path {path!r}: it names no file")
    if _WINDOWS_DRIVE.match(segments[0]):  # `./C:x` would normalize to the drive path `C:x`
        raise InvalidPath(f"invalid artifact path {path!r}: it names a Windows drive")
    return "/".join(segments)


def _rejection_reason(path: str) -> str | None:
    if not path:
        return "it is empty"
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        return "it is absolute; use a path relative to the artifact root"
    if _CONTROL_CHARACTERS.search(path):
        return "it contains a control character"
    if "\\" in path:
        return "it contains a backslash; separate folders with '/'"
    if ".." in path.split("/"):
        return "it contains a '..' segment"
    return None


def resolve_under(root: Path, logical: str) -> Path:
    """The resolved location of `logical` inside `root`, checked to stay inside it.

    Symlinks already present under `root` are followed, so a link pointing outside
    the root is caught here. The check is a snapshot: a link created afterwards by
    someone else is not.

    Raises:
        InvalidPath: `logical` is invalid (see `validate_logical_path`), or resolves
            outside `root` (or onto `root` itself), or runs into a symlink loop.
    """
    normalized = validate_logical_path(logical)
    try:
        resolved_root = root.resolve()
        target = (resolved_root / normalized).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop before 3.13
        raise InvalidPath(f"cannot resolve artifact path {logical!r} under {root}: {exc}") from exc
    if target == resolved_root or not target.is_relative_to(resolved_root):
        raise InvalidPath(
            f"invalid artifact path {logical!r}: through a symlink it resolves to {target},"
            f" not to a file inside {resolved_root}"
        )
    return target
