"""Logical artifact paths: normalization, and no way out of the root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loopline.errors import InvalidInput, InvalidPath
from loopline.store.paths import resolve_under, validate_logical_path

# Segments a user could plausibly write: no separators or control characters, never "." or
# "..", no URI spelling (`%2e`, `~x`, `s3:` before another segment).
VALID_SEGMENT = (
    st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_characters="/\\%:\u2028\u2029", exclude_categories=("Cc",)
        ),
        min_size=1,
        max_size=12,
    )
    .filter(lambda segment: segment not in (".", ".."))
    .filter(lambda segment: not segment.startswith("~"))
)


def _has_drive(path: str) -> bool:
    return len(path) >= 2 and path[1] == ":" and path[0].isascii() and path[0].isalpha()


VALID_PATH = (
    st.lists(VALID_SEGMENT, min_size=1, max_size=6)
    .map("/".join)
    .filter(lambda path: not _has_drive(path))
)
# Strings built from the characters that matter for traversal.
PATHISH = st.text(
    alphabet=["a", "b", ".", "/", "\\", ":", "C", "\x00", "\n", " ", "~"], max_size=20
)
TRAVERSAL = st.sampled_from(["..", "../", "/..", "a/../..", "../../etc/passwd"])

# Hypothesis reuses one tmp_path across examples; nothing here writes to it.
same_tmp_path = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("model.pkl", "model.pkl"),
        ("./model//weights/", "model/weights"),
        ("a/./b/./c", "a/b/c"),
        ("data/v1.0/part-0.parquet", "data/v1.0/part-0.parquet"),
        ("...", "..."),
        ("a..b/c..", "a..b/c.."),
        ("über/模型.bin", "über/模型.bin"),
    ],
)
def test_valid_paths_are_normalized(raw: str, normalized: str) -> None:
    assert validate_logical_path(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        (".", "names no file"),
        ("./", "names no file"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("C:/Windows", "absolute"),
        ("C:\\Windows", "absolute"),
        ("c:relative", "absolute"),
        ("..", "'..'"),
        ("../secret", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("a\\..\\b", "backslash"),
        ("model\x00.pkl", "control character"),
        ("line\nbreak", "control character"),
        ("del\x7f", "control character"),
    ],
)
def test_invalid_paths_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPath, match=reason) as caught:
        validate_logical_path(raw)
    assert repr(raw) in caught.value.message
    assert "\n" not in caught.value.message.replace(repr(raw), "")


def test_non_string_path_is_rejected() -> None:
    with pytest.raises(InvalidPath, match="must be a string, got bytes"):
        validate_logical_path(b"model.pkl")  # type: ignore[arg-type]


def test_invalid_path_is_invalid_input() -> None:
    assert issubclass(InvalidPath, InvalidInput)


@given(VALID_PATH)
def test_valid_paths_round_trip(path: str) -> None:
    assert validate_logical_path(path) == path


@given(VALID_PATH, st.lists(st.sampled_from(["./", "/", ""]), min_size=1, max_size=4))
def test_redundant_separators_normalize_away(path: str, noise: list[str]) -> None:
    noisy = "".join(noise).lstrip("/") + path.replace("/", "/" + "".join(noise)) + "/"
    assert validate_logical_path(noisy) == path


@given(PATHISH)
@example("a/b/..")
@example("C:x")
@example("./C:")
def test_normalization_is_idempotent(raw: str) -> None:
    try:
        normalized = validate_logical_path(raw)
    except InvalidPath:
        return
    assert validate_logical_path(normalized) == normalized


@same_tmp_path
@given(st.one_of(PATHISH, VALID_PATH))
def test_any_accepted_path_stays_under_the_root(tmp_path: Path, raw: str) -> None:
    try:
        resolved = resolve_under(tmp_path, raw)
    except InvalidPath:
        return
    root = tmp_path.resolve()
    assert resolved.is_relative_to(root)
    assert resolved != root


@given(
    st.lists(VALID_SEGMENT, max_size=3),
    TRAVERSAL,
    st.lists(VALID_SEGMENT, max_size=3),
)
def test_every_dot_dot_form_is_rejected(before: list[str], climb: str, after: list[str]) -> None:
    path = "/".join([*before, climb, *after])
    with pytest.raises(InvalidPath):
        validate_logical_path(path)


@given(VALID_PATH, st.sampled_from(["/", "//", "C:/", "C:\\", "D:", "z:"]))
def test_absolute_forms_are_rejected(path: str, anchor: str) -> None:
    with pytest.raises(InvalidPath, match="absolute"):
        validate_logical_path(anchor + path)


@given(VALID_PATH, st.integers(min_value=0), st.sampled_from(["\\", "\x00", "\x1b", "\r"]))
def test_backslashes_and_control_characters_are_rejected(
    path: str, position: int, bad: str
) -> None:
    at = position % (len(path) + 1)
    with pytest.raises(InvalidPath):
        validate_logical_path(path[:at] + bad + path[at:])


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_pointing_outside_the_root_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "escape")
    with pytest.raises(InvalidPath, match="symbolic link"):
        resolve_under(root, "escape/model.pkl")


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_inside_the_root_is_refused_too(tmp_path: Path) -> None:
    """Even a link that stays inside is not followed: data never decides where a write
    lands through a link (a pushed link can be retargeted later)."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    with pytest.raises(InvalidPath, match="symbolic link"):
        resolve_under(tmp_path, "alias/model.pkl")


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_loop_is_rejected(tmp_path: Path) -> None:
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(InvalidPath):
        resolve_under(tmp_path, "loop/model.pkl")


def test_resolve_under_returns_a_path_inside_the_root(tmp_path: Path) -> None:
    assert resolve_under(tmp_path, "./a//b/") == tmp_path.resolve() / "a" / "b"
