"""`data diff`: what changed between two versions — files, and for tables the schema,
row counts, per-column statistics and (with a key) the rows themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline.data import _manifest
from loopline.data.checkout import materialize
from loopline.data.versions import resolve
from loopline.errors import InvalidInput
from loopline.project import stores
from loopline.store import DatasetVersion

if TYPE_CHECKING:
    from loopline.data.profile import TableProfile
    from loopline.data.table_diff import ColumnShift, RowDiff, SchemaDiff


@dataclass(frozen=True)
class DatasetDiff:
    old: DatasetVersion
    new: DatasetVersion
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    schema: SchemaDiff | None = None
    shifts: tuple[ColumnShift, ...] = ()
    rows: RowDiff | None = None

    @property
    def identical(self) -> bool:
        return self.old.manifest_hash == self.new.manifest_hash

    def to_dict(self) -> dict[str, object]:
        return {
            "old": self.old.ref,
            "new": self.new.ref,
            "files": {
                "added": list(self.added),
                "removed": list(self.removed),
                "changed": list(self.changed),
            },
            "rows": {"old": self.old.row_count, "new": self.new.row_count},
            "schema": None if self.schema is None else self.schema.to_dict(),
            "shifts": [shift.to_dict() for shift in self.shifts],
            "row_diff": None if self.rows is None else self.rows.to_dict(),
        }


def diff(old_ref: str, new_ref: str, *, key: str | None = None) -> DatasetDiff:
    """Compare two versions (e.g. "credit@2", "credit@3"); `key` also diffs rows by it."""
    from loopline.data.profile import tabular_files
    from loopline.data.table_diff import diff_profiles, diff_rows, diff_schemas

    old, new = resolve(old_ref), resolve(new_ref)
    artifacts = stores().artifacts
    before = _manifest.load(artifacts, old.manifest_hash).by_path()
    after = _manifest.load(artifacts, new.manifest_hash).by_path()
    changed = tuple(
        p for p in sorted(before.keys() & after.keys()) if before[p].file.hash != after[p].file.hash
    )
    result = DatasetDiff(
        old=old,
        new=new,
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=changed,
    )
    old_profile, new_profile = profile_of(old), profile_of(new)
    if old_profile is not None and new_profile is not None:
        result = _with(
            result,
            schema=diff_schemas(old_profile, new_profile),
            shifts=tuple(diff_profiles(old_profile, new_profile)),
        )
    if key is not None:
        old_tables, new_tables = tabular_files(materialize(old)), tabular_files(materialize(new))
        if not old_tables or not new_tables:
            raise InvalidInput("--key compares rows of tables; these versions hold no CSV/Parquet")
        result = _with(result, rows=diff_rows(old_tables, new_tables, key))
    return result


def profile_of(version: DatasetVersion) -> TableProfile | None:
    """The stored profile of a tabular version (None for other data)."""
    from loopline.data.profile import TableProfile

    if version.profile_hash is None:
        return None
    body = json.loads(stores().artifacts.get_bytes(version.profile_hash))
    return TableProfile.from_dict(body)


def _with(result: DatasetDiff, **changes: object) -> DatasetDiff:
    from dataclasses import replace

    return replace(result, **changes)  # type: ignore[arg-type]
