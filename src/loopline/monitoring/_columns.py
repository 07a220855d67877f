"""One monitored column: its reference summary (built once from the reference's values),
the window accumulators fed batch by batch, and the verdict. Arrow columns of any type
the log holds are turned here into what the statistics take: float64 with NaN for
nulls (numbers), or an object array of strings with None (categories)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.monitoring._verdict import DriftThresholds, FeatureDrift


def as_numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN where null; raises TypeError for a column that holds no numbers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_boolean(kind) or not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
        or pa.types.is_decimal(kind)
    ):
        raise TypeError(f"not a numeric column: {kind}")
    values = column if kind == pa.float64() else pc.cast(column, pa.float64())
    if values.null_count:  # without nulls, a float64 column's buffer is read as it is
        values = values.fill_null(float("nan"))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


def as_categories(column: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """An object array of strings (booleans and numbers as their text), None where null."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, np.ndarray):
        column = pa.array(column.tolist())
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if pa.types.is_boolean(column.type):
        column = pc.if_else(column, "true", "false")
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if pa.types.is_null(column.type):
            column = pa.nulls(len(column), pa.string())
        else:
            column = pc.cast(column, pa.string())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


@dataclass
class ColumnMonitor:
    """A column compared between the reference and a window: `kind` is "numeric" or
    "categorical"; `windows` holds one accumulator per key (a model version, a segment)."""

    name: str
    kind: str
    reference: Any
    windows: dict[str, Any] = field(default_factory=dict)
    type_problems: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, kind: str, values: Any) -> ColumnMonitor:
        from loopline.monitoring._categorical import CategoricalReference
        from loopline.monitoring._numeric import NumericReference

        if kind == "numeric":
            return cls(name, kind, NumericReference.build(_numbers(values)))
        return cls(name, kind, CategoricalReference.build(values))

    def window(self, key: str) -> Any:
        found = self.windows.get(key)
        if found is None:
            from loopline.monitoring._categorical import CategoricalWindow
            from loopline.monitoring._numeric import NumericWindow

            found = (
                NumericWindow(self.reference)
                if self.kind == "numeric"
                else CategoricalWindow(self.reference)
            )
            self.windows[key] = found
        return found

    def update(self, key: str, column: pa.Array | pa.ChunkedArray | np.ndarray) -> None:
        """Feed one batch's values of this column to the window of `key`. Values of the
        wrong kind (text in a numeric column) are counted as type problems, not fed."""
        window = self.window(key)
        if self.kind == "numeric":
            try:
                values = _numbers(column)
            except TypeError:
                self.type_problems[key] = self.type_problems.get(key, 0) + len(column)
                return
            window.update(values)
        else:
            window.update(column)

    def verdict(self, key: str, thresholds: DriftThresholds) -> FeatureDrift:
        from loopline.monitoring._verdict import judge

        return judge(self.name, self.reference, self.window(key), thresholds)


def _numbers(values: Any) -> np.ndarray:
    import numpy as np

    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise TypeError(f"not a numeric column: {values.dtype}")
        return values.astype(np.float64, copy=False)
    return as_numbers(values)
