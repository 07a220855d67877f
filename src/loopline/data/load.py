"""Loading a version as a table; inside a run, the version becomes one of its inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

from loopline.data.checkout import materialize
from loopline.data.versions import resolve
from loopline.errors import InvalidInput
from loopline.lineage import record_input
from loopline.store import DatasetVersion, LinkKind

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@overload
def load(ref: str, *, as_: Literal["pandas"] = ...) -> pd.DataFrame: ...
@overload
def load(ref: str, *, as_: Literal["arrow"]) -> pa.Table: ...


def load(ref: str, *, as_: Literal["pandas", "arrow"] = "pandas") -> pd.DataFrame | pa.Table:
    """The tabular files of version `ref` (e.g. "credit@3") as one table.

    Inside an active run, the version is recorded as an input of the run (lineage).
    """
    from loopline.data.profile import read_table, tabular_files

    if as_ not in ("pandas", "arrow"):
        raise InvalidInput(f"as_ must be 'pandas' or 'arrow', got {as_!r}")
    version = resolve(ref)
    tables = tabular_files(materialize(version))
    if not tables:
        raise InvalidInput(f"{version.ref} holds no CSV or Parquet files to load")
    table = read_table(tables, as_=as_)
    record_use(version)
    return table


def record_use(version: DatasetVersion) -> None:
    """Link the version as an input of the active run, if any."""
    record_input(LinkKind.DATASET_VERSION, version.dataset, version.id, version.total_size)
