"""The local model cache never follows links and never falls back to what is there.

Defect 7: a cache folder replaced by a symlink to another package's folder was detected
as damaged, the re-fetch failed silently (`rmtree(ignore_errors=True)` on a link), and
`load` returned the other model. Now a link (the folder, or any file inside it) is found
with lstat, moved aside and removed as a link (what it points to is untouched), the
package is fetched again from the verified store and checked; a repair that fails raises.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopline as ll
from loopline.errors import CorruptedData, StoreUnavailable
from loopline.packaging import MANIFEST_NAME
from loopline.project import Stores
from loopline.serving.runtime import load_served

COLUMNS = ["a", "b", "c"]


@dataclass(frozen=True)
class Logged:
    ref: str
    folder: Path  # its cache folder
    blob: str  # the blob id of its model.skops
    expected: list[int]  # its predictions on ROWS


ROWS = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 3)), columns=COLUMNS)


def _log(name: str, flip: bool, opened: Stores) -> Logged:
    target = (ROWS["a"] > 0).astype(int)
    model = LogisticRegression().fit(ROWS, 1 - target if flip else target)
    version = ll.models.log_model(model, name, input_example=ROWS.head(3))
    cache = opened.settings.state_dir / "cache" / "models" / version.package_hash
    blob = _package_files(opened, version.package_hash)["model.skops"]
    return Logged(version.ref, cache, blob, model.predict(ROWS).tolist())


def _package_files(opened: Stores, package_hash: str) -> dict[str, str]:
    import json

    index = json.loads(opened.artifacts.get_bytes(package_hash))
    return {path: entry["id"] for path, entry in index["files"].items()}


@pytest.fixture
def two(project: Stores) -> tuple[Logged, Logged]:
    """Models A and B, which predict opposite labels, both loaded once (cache filled)."""
    a, b = _log("alpha", False, project), _log("beta", True, project)
    assert a.expected != b.expected
    for logged in (a, b):
        ll.models.load(logged.ref)
        assert logged.folder.is_dir() and not logged.folder.is_symlink()
    return a, b


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _replace_with_link(entry: Path, target: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()
    entry.symlink_to(target, target_is_directory=target.is_dir())


def _predicts(model: Any) -> list[int]:
    """A LoadedModel's or a ServedModel's predictions on ROWS."""
    if hasattr(model, "predict_rows"):
        return [int(x) for x in model.predict_rows(ROWS.to_dict("records")).predictions]
    return [int(x) for x in model.predict(ROWS)]


LOADERS: dict[str, Callable[[str], Any]] = {
    "models.load": ll.models.load,
    "load_served": lambda ref: load_served(ref, prefer_onnx=False, warm_up=False),
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_model_cache_substitution_by_a_folder_link_never_loads_the_other_model(
    loader: str, two: tuple[Logged, Logged]
) -> None:
    a, b = two
    b_before = _snapshot(b.folder)
    _replace_with_link(a.folder, b.folder)

    loaded = LOADERS[loader](a.ref)

    assert _predicts(loaded) == a.expected  # A, repaired; never B
    assert a.folder.is_dir() and not a.folder.is_symlink()
    assert _snapshot(b.folder) == b_before  # the link was removed, not what it pointed to
    assert _predicts(ll.models.load(b.ref)) == b.expected
    leftovers = [p.name for p in a.folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_link_in_place_before_the_first_load_is_replaced(project: Stores) -> None:
    a, b = _log("alpha", False, project), _log("beta", True, project)
    ll.models.load(b.ref)
    a.folder.parent.mkdir(parents=True, exist_ok=True)
    a.folder.symlink_to(b.folder, target_is_directory=True)
    assert _predicts(ll.models.load(a.ref)) == a.expected
    assert not a.folder.is_symlink()


@pytest.mark.parametrize("name", ["model.skops", MANIFEST_NAME])
def test_a_file_in_the_cache_replaced_by_a_link_to_the_other_package_is_repaired(
    name: str, two: tuple[Logged, Logged]
) -> None:
    a, b = two
    _replace_with_link(a.folder / name, b.folder / name)
    assert _predicts(ll.models.load(a.ref)) == a.expected
    assert not (a.folder / name).is_symlink()
    assert not (b.folder / name).is_symlink() and (b.folder / name).is_file()


@pytest.mark.parametrize("name", ["model.skops", MANIFEST_NAME])
def test_a_link_is_found_by_lstat_even_when_its_bytes_match(
    name: str, two: tuple[Logged, Logged], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A link to an identical copy passes every hash check: only lstat sees it."""
    a, _ = two
    copy = tmp_path / f"copy-{name}"
    copy.write_bytes((a.folder / name).read_bytes())
    _replace_with_link(a.folder / name, copy)
    with caplog.at_level("WARNING"):
        assert _predicts(ll.models.load(a.ref)) == a.expected
    assert "damaged" in caplog.text
    assert not (a.folder / name).is_symlink()
    assert copy.is_file()  # the link's target is left alone


def test_an_unknown_file_or_link_in_the_cache_folder_is_removed(
    two: tuple[Logged, Logged], tmp_path: Path
) -> None:
    a, _ = two
    (a.folder / "model.pkl").write_bytes(b"not part of the package")
    (a.folder / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    assert _predicts(ll.models.load(a.ref)) == a.expected
    assert sorted(p.name for p in a.folder.iterdir()) == sorted([MANIFEST_NAME, "model.skops"])
    assert tmp_path.is_dir()


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """`folder` where no entry can be created or renamed: mode 0555 for a user, the
    immutable attribute for root (whom modes do not stop); skipped if neither holds."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = [["chmod", "755", str(folder)]]
    elif (
        shutil.which("chattr")
        and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    ):
        undo = [["chattr", "-i", str(folder)]]
    else:
        pytest.skip("cannot make a folder unwritable here (root without chattr +i)")
    try:
        try:
            (folder / ".probe").mkdir()
        except OSError:
            pass
        else:
            (folder / ".probe").rmdir()
            pytest.skip(f"{folder} stays writable")
        yield
    finally:
        for command in undo:
            subprocess.run(command, check=True)


def test_a_repair_that_cannot_write_is_an_error_never_the_other_model(
    two: tuple[Logged, Logged],
) -> None:
    a, b = two
    _replace_with_link(a.folder, b.folder)
    with unwritable(a.folder.parent), pytest.raises(StoreUnavailable, match="model cache"):
        ll.models.load(a.ref)
    assert _predicts(ll.models.load(b.ref)) == b.expected
    # once the cache is writable again, the repair goes through
    assert _predicts(ll.models.load(a.ref)) == a.expected


def test_a_repair_from_a_damaged_blob_is_an_error_never_the_other_model(
    two: tuple[Logged, Logged], project: Stores
) -> None:
    a, b = two
    stored = Path(project.artifacts.uri) / "blobs" / a.blob[:2] / a.blob[2:]
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    _replace_with_link(a.folder, b.folder)
    with pytest.raises(CorruptedData):
        ll.models.load(a.ref)
    with pytest.raises(CorruptedData):
        load_served(a.ref, prefer_onnx=False, warm_up=False)
    assert _predicts(ll.models.load(b.ref)) == b.expected
