"""DataFrames a run read, recorded by digest and profile without versioning them.

MLflow's `log_input(dataset, context, tags)` for the common case of a frame built in
memory: the run keeps what would let someone recognise the data later (a digest of its
content, its schema, a small profile) but not the rows; `ll.data.add` is the way to
version the rows themselves.

The digest is BLAKE3 over the Arrow IPC stream of the frame's columns (names, types and
values, chunks merged, metadata and index left out), so the same content gives the same
digest whatever pandas built it, and any changed value, type or name gives another.
The record (digest, name, context, tags, schema, profile) is a JSON blob in the artifact
store, linked as an input of kind "dataframe" named `NAME@DIGEST12`: logging the same
content under the same name again re-points that one link (latest context and tags).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.project import Stores
from loopline.store import Direction, LinkKind, RunLink, check_key, tag_text
from loopline.tracking._frames import arrow_table

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_NAME = "dataframe"
SHOWN_DIGEST = 12  # hex digits of the digest in the link's name


@dataclass(frozen=True)
class DataFrameInput:
    """What a run recorded of a DataFrame it read (`log_input`)."""

    name: str
    digest: str
    rows: int
    columns: list[dict[str, Any]]  # name, type, nulls, and min/max/mean or distinct
    context: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def link_name(self) -> str:
        return f"{self.name}@{self.digest[:SHOWN_DIGEST]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "rows": self.rows,
            "columns": self.columns,
            "context": self.context,
            "tags": self.tags,
        }


def log_input(
    run_id: str,
    stores: Stores,
    dataset: object,
    context: object = None,
    tags: Mapping[str, object] | None = None,
    name: object = None,
) -> DataFrameInput:
    """Record `dataset` (a DataFrame or a dict of columns) as an input of the run.

    `context` says what the run used it for ("training", "validation"); `tags` are
    str -> str. Raises InvalidInput for a value Arrow cannot hold, a bad name, context
    or tag.
    """
    label = check_key("input name", DEFAULT_NAME if name is None else name)
    purpose = None if context is None else check_key("input context", context)
    labels = _tags(tags)
    table = arrow_table(dataset, "log_input", keep_index=False)
    found = DataFrameInput(
        name=label,
        digest=frame_digest(table),
        rows=table.num_rows,
        columns=profile_columns(table),
        context=purpose,
        tags=labels,
    )
    record = json.dumps(found.to_dict(), sort_keys=True, allow_nan=False).encode()
    blob = stores.artifacts.put_bytes(record)
    stores.metadata.runs.add_links(
        run_id, Direction.INPUT, LinkKind.DATAFRAME, [(found.link_name, blob.hash, blob.size)]
    )
    return found


def list_inputs(run_id: str, stores: Stores) -> list[DataFrameInput]:
    """The DataFrames the run recorded with `log_input`, by name."""
    links = stores.metadata.runs.list_links(run_id, Direction.INPUT, LinkKind.DATAFRAME)
    return [read_input(link, stores) for link in links]


def read_input(link: RunLink, stores: Stores) -> DataFrameInput:
    """The record a "dataframe" input link points at."""
    data = json.loads(stores.artifacts.get_bytes(link.ref))
    return DataFrameInput(
        name=data["name"],
        digest=data["digest"],
        rows=int(data["rows"]),
        columns=list(data["columns"]),
        context=data.get("context"),
        tags=dict(data.get("tags") or {}),
    )


def frame_digest(table: pa.Table) -> str:
    """BLAKE3 of the table's Arrow IPC stream, without metadata and in one chunk."""
    import blake3
    import pyarrow as pa

    plain = table.replace_schema_metadata(None).combine_chunks()
    sink = _HashingSink(blake3.blake3())
    with pa.ipc.new_stream(sink, plain.schema) as writer:
        writer.write_table(plain)
    return str(sink.hasher.hexdigest())


def profile_columns(table: pa.Table) -> list[dict[str, Any]]:
    """Per column: type and nulls; numbers add min, max, mean (finite values) and how
    many are NaN or infinite; text and booleans their distinct count; dates and
    timestamps min and max as text. Other types (lists, structs, ...): type and nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column_field, column in zip(table.schema, table.columns, strict=True):
        kind = column_field.type
        entry: dict[str, Any] = {
            "name": column_field.name,
            "type": str(kind),
            "nulls": column.null_count,
        }
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = column
            if pa.types.is_floating(kind):
                values = pc.filter(column, pc.is_finite(column))
                entry["non_finite"] = len(column) - column.null_count - len(values)
            extremes = pc.min_max(values).as_py()
            entry.update(min=extremes["min"], max=extremes["max"], mean=_finite(pc.mean(values)))
        elif (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
        ):
            entry["distinct"] = pc.count_distinct(column).as_py()
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            extremes = pc.min_max(column).as_py()
            entry.update({k: None if v is None else str(v) for k, v in extremes.items()})
        columns.append(entry)
    return columns


def _finite(scalar: Any) -> float | None:
    value = scalar.as_py()
    return value if value is not None and math.isfinite(value) else None


def _tags(tags: object) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"log_input tags must be a dict of str -> str, got {tags!r}")
    checked = {}
    for key, value in tags.items():
        key = check_key("input tag", key)
        if not isinstance(value, str):
            raise InvalidInput(f"input tag {key!r} must be a str, got {type(value).__name__}")
        checked[key] = tag_text(key, value)
    return checked


class _HashingSink:
    """A write-only file object that feeds what Arrow writes into a hasher (no copy)."""

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self.closed = False

    def write(self, data: Any) -> int:
        self.hasher.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
