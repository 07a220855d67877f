"""What the datasets tables hold, as plain records: importable without SQLAlchemy.

An unchanged `data add` answers from these and the stat cache alone (`store._quick`),
so they live apart from the SQL in `datasets.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from loopline.errors import InvalidInput

# Applied with fullmatch: `$` in `match` would accept a trailing newline ("ds1\n").
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    created_at: datetime
    description: str | None = None
    latest_version: int | None = None


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version: `ref` (e.g. "credit@3") names it."""

    id: str
    dataset: str
    version: int
    manifest_hash: str
    message: str | None
    author: str
    created_at: datetime
    file_count: int
    total_size: int
    row_count: int | None = None
    schema_json: str | None = None
    profile_hash: str | None = None
    source: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True)
class ValidationRecord:
    id: str
    version_id: str
    suite_name: str
    suite_hash: str
    success: bool
    failed: int
    result_hash: str
    created_at: datetime


def check_dataset_name(name: object) -> str:
    """Dataset names become file names (NAME.loopline): no '/', no '..', no leading dot."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid dataset name {name!r}",
            hint="use 1-128 letters, digits, '_', '-' and '.', starting with a letter or digit",
        )
    return name
