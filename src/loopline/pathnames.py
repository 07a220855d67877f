"""Logical path names: the lexical rules every relative path that comes from data meets.

A logical path is a relative POSIX name that users or stored records give a file: an
artifact inside a run, an entry of a dataset manifest or of a model package's manifest,
a pointer file's `path:`, a version's recorded source. `validate_logical_path` refuses,
never repairs, anything that could escape a root or be read as something other than a
plain relative name (absolute or drive paths, `..`, backslashes, control characters,
lone surrogates, URI spellings such as `file://`, percent-encoding, `~`);
`control_folder` finds `.git` and `.loopline` in any spelling a file system would open.

Purely lexical and light (no file system, no store): packaging checks package manifests
with it without loading SQLAlchemy. Turning a logical path into a place on disk is
`loopline.store.resolve_under`'s job.
"""

from __future__ import annotations

import re

from loopline.errors import InvalidPath

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# Unicode category Cc: C0 controls, DEL and C1 controls (NEL included); and the line and
# paragraph separators, which terminals and logs render as line breaks.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# `file://`, `s3://bucket`, `http://...` at the start of any segment: a URI, not a path.
_URI = re.compile(r"(?:^|/)[A-Za-z][A-Za-z0-9+.\-]*://")
# `file:` as the first segment of `file:/etc/x`: a URI with an empty authority.
_SCHEME_SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Anything that could make one of the checks below fail; a path without any of it (the
# common case: 20,000 manifest entries are read per checkout) skips them.
_SUSPICIOUS = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\%:\ud800-\udfff]|^/|(?:^|/)(?:~|\.\.(?:/|$))"
)
MAX_SEGMENT_BYTES = 255  # NAME_MAX of common file systems
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux

# Folders whose content is executed or trusted: git's (hooks, `core.fsmonitor`) and
# loopline's own state (database, artifact store). `git~1` is `.git`'s 8.3 short name on
# Windows. Compared after case folding and after dropping what file systems drop.
_CONTROL_FOLDERS = frozenset({".git", ".loopline", "git~1"})
# Code points HFS+ ignores in names (so `.g\u200cit` is `.git` there), as git checks them.
_IGNORED_BY_HFS = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def validate_logical_path(path: str) -> str:
    """The normalized form of a relative logical path, or InvalidPath saying why not.

    Normalizing collapses `.` segments and repeated slashes and drops a trailing slash:
    `./model//weights/` becomes `model/weights`.

    Raises:
        InvalidPath: `path` is not a string, is empty, absolute (`/x`, `C:/x`), holds a
            `..` segment, a backslash, an ASCII or C1 control character (NUL included), a
            lone surrogate, a URI scheme (`file:///x`, `s3://b`), a percent-encoded
            byte (`%2e`), a segment starting with `~`, a segment longer than 255 bytes,
            is longer than 4096 characters, or normalizes to nothing (`.`, `./`).
    """
    if not isinstance(path, str):
        raise InvalidPath(f"artifact path must be a string, got {type(path).__name__}")
    if 0 < len(path) <= MAX_SEGMENT_BYTES // 4 and not _SUSPICIOUS.search(path):
        segments = [segment for segment in path.split("/") if segment not in ("", ".")]
        if segments:
            return "/".join(segments)
    reason = _rejection_reason(path)
    if reason is not None:
        raise InvalidPath(f"invalid artifact path {shown_path(path)}: {reason}")
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if not segments:
        raise InvalidPath(f"invalid artifact path {shown_path(path)}: it names no file")
    if _WINDOWS_DRIVE.match(segments[0]):  # `./C:x` would normalize to the drive path `C:x`
        raise InvalidPath(f"invalid artifact path {shown_path(path)}: it names a Windows drive")
    if len(segments) > 1 and _SCHEME_SEGMENT.fullmatch(segments[0]):
        raise InvalidPath(
            f"invalid artifact path {shown_path(path)}: it reads as a URI ({segments[0]}/...); "
            "give a path relative to the artifact root"
        )
    reason = _segment_problem(segments)
    if reason is not None:
        raise InvalidPath(f"invalid artifact path {shown_path(path)}: {reason}")
    return "/".join(segments)


def _rejection_reason(path: str) -> str | None:
    if not path:
        return "it is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"it is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        return "it is absolute; use a path relative to the artifact root"
    if _CONTROL_CHARACTERS.search(path):
        return "it contains a control character"
    if not is_valid_unicode(path):
        return "it is not valid Unicode (a lone surrogate)"
    if "\\" in path:
        return "it contains a backslash; separate folders with '/'"
    if ".." in path.split("/"):
        return "it contains a '..' segment"
    if _URI.search(path):
        return "it is a URI, not a path; give a path relative to the artifact root"
    if _PERCENT_ESCAPE.search(path):
        return "it contains a percent-encoded byte; write the character itself"
    return None


def _segment_problem(segments: list[str]) -> str | None:
    for segment in segments:
        if segment.startswith("~"):
            return f"segment {segment!r} starts with '~', which shells read as a home folder"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def shown_path(path: str) -> str:
    """The path as an error message quotes it: whole, unless it is very long."""
    if len(path) <= 200:
        return repr(path)
    return f"{path[:60]!r}... ({len(path)} characters)"


def is_valid_unicode(text: str) -> bool:
    """False for text UTF-8 cannot encode: a lone surrogate (`"\\ud800"`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def control_folder(logical: str) -> str | None:
    """The first segment of a normalized logical path that names `.git` or `.loopline`.

    Matches what case-insensitive file systems would open: `.GIT`, `.git.` and
    `.git ` (Windows drops trailing dots and spaces), `GIT~1`, `.g\\u200cit` (HFS+).
    """
    for segment in logical.split("/"):
        if segment.isascii():  # the common case, checked without a regex
            if not segment.startswith(".") and "~" not in segment:
                continue
            folded = segment.rstrip(". ").lower()
        else:
            folded = _IGNORED_BY_HFS.sub("", segment).rstrip(". ").casefold()
        if folded in _CONTROL_FOLDERS:
            return segment
    return None
