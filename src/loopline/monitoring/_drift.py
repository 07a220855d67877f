"""`drift()`: every column of a current table against a reference, and the report it makes.

The reference is read whole, one column at a time, into summaries (numeric: quantile
edges and counts; categorical: value counts); the current side is streamed in batches
into windows over those summaries, so its memory stays bounded whatever its size.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopline.errors import InvalidInput
from loopline.monitoring._categorical import CategoricalReference, CategoricalWindow
from loopline.monitoring._multivariate import ROW_CHUNK, PCAReference, PCAWindow
from loopline.monitoring._numeric import FloatArray, NumericReference, NumericWindow
from loopline.monitoring._sources import Source, open_source
from loopline.monitoring._verdict import (
    DriftThresholds,
    FeatureDrift,
    Kind,
    judge,
    type_mismatch,
)

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

#: fewer reference rows than this give no multivariate figure (10 chunks of 10 rows)
MULTIVARIATE_MIN_ROWS = 100


@dataclass(frozen=True)
class DriftReport:
    """Per-feature verdicts (in column order) and the multivariate figure."""

    features: dict[str, FeatureDrift]
    multivariate: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        """The names of the features that drifted (type mismatches included)."""
        return [name for name, feature in self.features.items() if feature.drifted]

    def to_dict(self) -> dict[str, Any]:
        """{"features": {name: {...}}, "multivariate": {...}, "drifted": [...]}, JSON-safe."""
        return {
            "features": {name: feature.to_dict() for name, feature in self.features.items()},
            "multivariate": dict(self.multivariate),
            "drifted": self.drifted,
        }


Thresholds = DriftThresholds | Mapping[str, DriftThresholds] | None
KindAndProblem = tuple[Kind, str | None]


def drift(
    reference: object,
    current: object,
    columns: Collection[str] | None = None,
    *,
    thresholds: Thresholds = None,
    categorical: Collection[str] | None = None,
) -> DriftReport:
    """Compare the current table with the reference, column by column and all together.

    reference, current: a pandas DataFrame, a pyarrow Table, a Parquet file or folder
    (str or Path; the current side is read in batches) or a dataset version "NAME@V".
    columns: the columns to compare (default: every column both have, in the reference's
    order; columns of other types than numbers, text and booleans are then skipped).
    thresholds: DriftThresholds for every column, or a mapping of column name to
    DriftThresholds (the others keep the defaults).
    categorical: numeric columns to compare as categories (codes, ratings).
    A column that is numeric on one side and text on the other is not an error: its
    FeatureDrift says "type mismatch" (drifted, no statistics).

    Returns a DriftReport. Raises InvalidInput for inputs of another type, an unknown or
    unsupported column, no column in common, or thresholds that are not DriftThresholds;
    NotFound for a dataset reference that does not resolve.
    """
    reference_source = open_source(reference, "reference")
    current_source = open_source(current, "current")
    names = _columns(reference_source, current_source, columns)
    declared = _categorical(categorical, names)
    per_feature = _thresholds(thresholds, names)
    kinds = {name: _kind(name, reference_source, current_source, declared) for name in names}
    compared = [name for name in names if kinds[name][1] is None]
    summaries, reference_rows, pca = _reference_summaries(reference_source, compared, kinds)
    windows: dict[str, NumericWindow | CategoricalWindow] = {
        name: NumericWindow(summary) if isinstance(summary, NumericReference)
        else CategoricalWindow(summary)
        for name, summary in summaries.items()
    }  # fmt: skip
    pca_window = PCAWindow(pca[0]) if pca is not None else None
    current_rows = 0
    for batch in current_source.batches(names):
        current_rows += batch.num_rows
        numbers: dict[str, FloatArray] = {}
        for name, window in windows.items():
            if isinstance(window, NumericWindow):
                numbers[name] = _floats(batch.column(name))
                window.update(numbers[name])
            else:
                window.update(batch.column(name))
        if pca_window is not None and pca is not None:
            for start in range(0, batch.num_rows, ROW_CHUNK):  # a few MB at a time
                stop = start + ROW_CHUNK
                pca_window.update(np.column_stack([numbers[n][start:stop] for n in pca[1]]))
    features: dict[str, FeatureDrift] = {}
    for name in names:
        kind, problem = kinds[name]
        if problem is not None:
            features[name] = type_mismatch(name, kind, problem, reference_rows, current_rows)
        else:
            features[name] = judge(name, summaries[name], windows[name], per_feature[name])
    return DriftReport(features, _multivariate(pca_window, pca))


def _columns(reference: Source, current: Source, columns: Collection[str] | None) -> list[str]:
    current_names = set(current.schema.names)
    if columns is None:
        common = [name for name in reference.schema.names if name in current_names]
        if not common:
            raise InvalidInput("the reference and the current table have no column in common")
        kept = [
            name for name in common if "unsupported" not in _both_kinds(name, reference, current)
        ]
        skipped = sorted(set(common) - set(kept))
        if skipped:
            logger.info("drift skips columns of unsupported types: %s", ", ".join(skipped))
        if not kept:
            raise InvalidInput(
                "no column in common holds numbers, text or booleans: " + ", ".join(skipped)
            )
        return kept
    if isinstance(columns, str) or not isinstance(columns, Collection):
        raise InvalidInput(f"columns must be a list of column names, got {columns!r}")
    names = list(columns)
    if not names:
        raise InvalidInput("columns is empty; give at least one column name (or None for all)")
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"column names must be text, got {name!r}")
        for source in (reference, current):
            if name not in source.schema.names:
                raise InvalidInput(f"unknown column {name!r}: {source.label} has no such column")
        if "unsupported" in _both_kinds(name, reference, current):
            data_type = reference.schema.field(name).type
            raise InvalidInput(f"column {name!r} of type {data_type} cannot be compared")
    if len(set(names)) != len(names):
        raise InvalidInput("columns names a column twice")
    return names


def _both_kinds(name: str, reference: Source, current: Source) -> tuple[str, str]:
    return reference.kind(name), current.kind(name)


def _categorical(categorical: Collection[str] | None, names: list[str]) -> set[str]:
    if categorical is None:
        return set()
    if isinstance(categorical, str) or not isinstance(categorical, Collection):
        raise InvalidInput(f"categorical must be a list of column names, got {categorical!r}")
    unknown = [name for name in categorical if name not in names]
    if unknown:
        raise InvalidInput(f"categorical names {unknown[0]!r}, which is not a compared column")
    return set(categorical)


def _thresholds(thresholds: Thresholds, names: list[str]) -> dict[str, DriftThresholds]:
    if thresholds is None or isinstance(thresholds, DriftThresholds):
        chosen = thresholds or DriftThresholds()
        return dict.fromkeys(names, chosen)
    if not isinstance(thresholds, Mapping):
        raise InvalidInput(
            "thresholds must be DriftThresholds or a mapping of column name to DriftThresholds, "
            f"got {type(thresholds).__name__}"
        )
    per_feature = dict.fromkeys(names, DriftThresholds())
    for name, value in thresholds.items():
        if name not in per_feature:
            raise InvalidInput(f"thresholds names {name!r}, which is not a compared column")
        if not isinstance(value, DriftThresholds):
            raise InvalidInput(
                f"thresholds[{name!r}] must be DriftThresholds, got {type(value).__name__}"
            )
        per_feature[name] = value
    return per_feature


def _kind(name: str, reference: Source, current: Source, declared: set[str]) -> KindAndProblem:
    """(kind, problem): problem says how the types differ, or None when they agree."""
    if name in declared:
        return "categorical", None
    ref_kind, cur_kind = reference.kind(name), current.kind(name)
    # an all-null column takes the other side's kind; unsupported kinds were refused before
    kind: Kind = "numeric" if "numeric" in (ref_kind, cur_kind) else "categorical"
    if ref_kind in ("null", kind) and cur_kind in ("null", kind):
        return kind, None
    ref_type, cur_type = reference.schema.field(name).type, current.schema.field(name).type
    kind = "numeric" if ref_kind == "numeric" else "categorical"
    return kind, f"{ref_kind} ({ref_type}) in the reference, {cur_kind} ({cur_type}) now"


def _reference_summaries(
    source: Source, names: list[str], kinds: dict[str, KindAndProblem]
) -> tuple[
    dict[str, NumericReference | CategoricalReference], int, tuple[PCAReference, list[str]] | None
]:
    table = source.read(names) if names else None
    rows = table.num_rows if table is not None else _row_count(source)
    numeric = [name for name in names if kinds[name][0] == "numeric"]
    with_pca = len(numeric) >= 2 and rows >= MULTIVARIATE_MIN_ROWS
    # one matrix (rows x numeric columns) serves the per-column summaries and the PCA
    matrix = np.empty((rows, len(numeric)) if with_pca else (0, 0))
    summaries: dict[str, NumericReference | CategoricalReference] = {}
    for name in names:
        assert table is not None
        column = table.column(name)
        if kinds[name][0] == "numeric":
            values = _floats(column)
            summaries[name] = NumericReference.build(values)
            if with_pca:
                matrix[:, numeric.index(name)] = values
        else:
            summaries[name] = CategoricalReference.build(column)
    del table
    pca = (PCAReference.build(matrix), numeric) if with_pca else None
    return summaries, rows, pca


def _row_count(source: Source) -> int:
    if source.table is not None:
        return int(source.table.num_rows)
    return sum(batch.num_rows for batch in source.batches(source.schema.names[:1]))


def _floats(column: pa.Array | pa.ChunkedArray) -> FloatArray:
    """A numeric (or all-null) Arrow column as float64 numbers, NaN for nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    values: FloatArray = pc.cast(column, pa.float64(), safe=False).to_numpy()
    return values


def _multivariate(
    window: PCAWindow | None, pca: tuple[PCAReference, list[str]] | None
) -> dict[str, Any]:
    if window is None or pca is None:
        return {
            "reconstruction_error": None, "reference": None, "upper": None, "lower": None,
            "drifted": False, "columns": [],
            "reason": f"needs 2 numeric columns and {MULTIVARIATE_MIN_ROWS} reference rows",
        }  # fmt: skip
    return {**window.verdict(), "columns": pca[1]}
