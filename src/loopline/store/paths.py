"""The one resolver for every path that comes from data.

Every logical path (see loopline.pathnames: an artifact's name, a manifest entry, a
pointer's `path:`, a version's recorded source) may come from someone else (a pushed
version, a committed pointer, a crafted manifest). `validate_logical_path` (lexical,
re-exported here) refuses what could escape or be misread; `resolve_under` is the only
way such a path becomes a place on disk: it also refuses the control folders `.git` and
`.loopline` (in any letter case: macOS and Windows fold case), refuses every existing
component that is a symbolic link (checked with lstat, one component at a time:
loopline never writes through a link), and proves that the result lies strictly inside
the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from loopline.errors import InvalidPath
from loopline.pathnames import control_folder, shown_path, validate_logical_path

__all__ = ["control_folder", "resolve_under", "validate_logical_path"]


def resolve_under(root: Path, logical: str) -> Path:
    """Where `logical` lies inside `root`: the one resolver for paths that come from data.

    `root` itself is the caller's choice and may be reached through links; below it,
    nothing is followed. The check is a snapshot: a link created afterwards by someone
    else is not seen.

    Raises:
        InvalidPath: `logical` is invalid (see `validate_logical_path`), names a `.git`
            or `.loopline` folder, runs through an existing symbolic link (or ends on
            one), or does not lie strictly inside `root`.
    """
    normalized = validate_logical_path(logical)
    folder = control_folder(normalized)
    if folder is not None:
        raise InvalidPath(
            f"invalid path {shown_path(logical)}: {folder!r} is a control folder (git's or "
            "loopline's); loopline never writes into one"
        )
    try:
        base = root.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop before 3.13
        raise InvalidPath(f"cannot resolve the folder {root}: {exc}") from exc
    current = base
    for segment in normalized.split("/"):
        current = current / segment
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break  # nothing exists from here on, so nothing below can be a link
        except OSError as exc:
            raise InvalidPath(
                f"cannot check path {shown_path(logical)} under {base}: {exc}"
            ) from exc
        if stat.S_ISLNK(mode):
            raise InvalidPath(
                f"invalid path {shown_path(logical)}: {current} is a symbolic link; "
                "loopline does not write through links",
                hint="replace the link by a real folder or file, or remove it",
            )
    target = base / normalized
    # No '..' and no link below `base`: the lexical path is the real one; prove it anyway.
    if target == base or not target.is_relative_to(base):
        raise InvalidPath(f"invalid path {shown_path(logical)}: it does not lie inside {base}")
    return target
