"""Dataset names: what `add` calls a file by default, and what a typed name resolves to.

`loopline data add data/credit.csv` makes the dataset `credit`, the name a user types
(`ll.data.load("credit@3")`): a file's name loses its extension, and a compression suffix
before it (`credit.csv.gz` -> `credit`, `sales.2024.csv` -> `sales.2024`); a folder keeps
its name. Projects made before this rule have datasets named `credit.csv`; both spellings
keep working: a typed name that names no dataset also matches the one whose name differs
only by that extension (`credit` finds `credit.csv`, `credit.csv` finds `credit`). A name
that exists always wins, and a name that could mean two datasets is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from loopline.errors import InvalidInput
from loopline.store import check_dataset_name

COMPRESSION = frozenset({".gz", ".bz2", ".xz", ".zst", ".lz4", ".br", ".zip"})


def default_name(file_name: str) -> str:
    """The dataset name for a file: without its extension (and a compression suffix)."""
    path = PurePosixPath(file_name)
    if path.suffix.lower() in COMPRESSION:
        path = path.with_suffix("")
    return path.stem if path.suffix else path.name


def stored_name(typed: str, existing: Iterable[str]) -> str | None:
    """The existing dataset a typed name means, or None if none does.

    The exact name wins; otherwise the one dataset whose name equals `typed` up to a file
    extension. InvalidInput if two datasets could be meant.
    """
    names = set(existing)
    if typed in names:
        return typed
    stem = default_name(typed)
    candidates = {stem} & names if stem != typed else set()
    candidates |= {name for name in names if name != typed and default_name(name) == typed}
    if len(candidates) > 1:
        listed = ", ".join(sorted(candidates))
        raise InvalidInput(
            f"dataset name {typed!r} could mean {listed}",
            hint="type the full name, e.g. " + sorted(candidates)[0],
        )
    return next(iter(candidates), None)


def name_for(file_name: str, existing: Iterable[str]) -> str:
    """The dataset `add` versions a file into when no name is given: its default name, or
    the older `credit.csv` spelling when only a dataset of that name exists."""
    name = default_name(file_name)
    names = set(existing)
    if name not in names and file_name in names:
        return file_name  # a dataset made before names lost their extension
    return check_dataset_name(name)
