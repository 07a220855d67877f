"""One model version's part of a report, accumulated batch by batch: its inputs and
outputs against its reference, the multivariate reconstruction error, a bounded sample
of its class probabilities (for the estimate of performance before labels), and the
same tables per segment value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.monitoring._columns import ColumnMonitor, as_categories, as_numbers

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from loopline.monitoring._reference import Reference
    from loopline.registry import ModelVersion

ALL = ""  # the window key of every row (segments use "column=value")
MAX_SEGMENT_VALUES = 20
MAX_PROBABILITY_ROWS = 1_000_000
MAX_SAMPLE_ROWS = 50_000  # window rows kept for the reference's expectation suite


@dataclass
class VersionWatch:
    """What a report gathers about one model version over the window."""

    version: ModelVersion
    role: str
    reference: Reference
    classes: list[Any] | None
    inputs: dict[str, ColumnMonitor] = field(default_factory=dict)
    outputs: dict[str, ColumnMonitor] = field(default_factory=dict)
    segments: tuple[str, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)
    pca: Any = None  # a PCAReference over `pca_columns`
    pca_windows: dict[str, Any] = field(default_factory=dict)  # key -> PCAWindow
    probability_parts: list[np.ndarray] = field(default_factory=list)
    probability_rows: int = 0
    sample_rate: float = 1.0
    shadow: bool = False
    pca_columns: list[str] = field(default_factory=list)
    input_sample: list[pa.RecordBatch] = field(default_factory=list)
    input_sample_rate: float = 1.0

    @classmethod
    def build(
        cls,
        version: ModelVersion,
        role: str,
        reference: Reference,
        classes: list[Any] | None,
        *,
        segments: tuple[str, ...] = (),
        window_rows: int = 0,
    ) -> VersionWatch:
        from loopline.monitoring._columns import _numbers

        watch = cls(version, role, reference, classes, segments=segments, shadow=role == "shadow")
        numeric: list[str] = []
        for name in reference.table.column_names:
            column = reference.table.column(name)
            try:
                _numbers(column)
                kind = "numeric"
            except TypeError:
                kind = "categorical"
            if kind == "numeric":
                numeric.append(name)
            watch.inputs[name] = ColumnMonitor.build(name, kind, column)
        if reference.prediction is not None:
            kind = "categorical" if classes is not None else "numeric"
            watch.outputs["prediction"] = ColumnMonitor.build(
                "prediction", kind, reference.prediction
            )
        if reference.probabilities is not None and classes is not None:
            for index, label in enumerate(classes):
                name = f"probability[{label}]"
                watch.outputs[name] = ColumnMonitor.build(
                    name, "numeric", reference.probabilities[:, index]
                )
        if len(numeric) >= 2:
            from loopline.monitoring._multivariate import PCAReference

            watch.pca = PCAReference.build(_matrix(reference.table, numeric))
            watch.pca_columns = numeric
        if window_rows > MAX_PROBABILITY_ROWS:
            watch.sample_rate = MAX_PROBABILITY_ROWS / window_rows
        if window_rows > MAX_SAMPLE_ROWS:
            watch.input_sample_rate = MAX_SAMPLE_ROWS / window_rows
        return watch

    def update(self, batch: pa.RecordBatch) -> None:
        """Feed the rows of one batch that belong to this version."""
        self._update(ALL, batch)
        for column in self.segments:
            name = f"input:{column}"
            if name not in batch.schema.names:
                continue
            values = as_categories(batch.column(name))
            for value in _distinct(values):
                key = f"{column}={value}"
                if key not in self.rows and self._segment_count(column) >= MAX_SEGMENT_VALUES:
                    continue
                self._update(key, batch.filter(_mask(values, value)))
        self._probabilities(batch)
        self._sample(batch)

    def _sample(self, batch: pa.RecordBatch) -> None:
        import numpy as np
        import pyarrow as pa

        if self.shadow:
            return
        names = [n for n in batch.schema.names if n.startswith("input:")]
        part = batch.select(names)
        if self.input_sample_rate < 1.0:
            keep = np.random.default_rng(len(self.input_sample)).random(part.num_rows)
            part = part.filter(pa.array(keep < self.input_sample_rate))
        self.input_sample.append(part)

    def sample_frame(self) -> Any:
        """A uniform sample of the window's inputs (at most ~50,000 rows) as a DataFrame."""
        import pyarrow as pa

        if not self.input_sample:
            return None
        table = pa.Table.from_batches(self.input_sample)
        table = table.rename_columns([n.removeprefix("input:") for n in table.column_names])
        return table.to_pandas()

    def _segment_count(self, column: str) -> int:
        return sum(1 for key in self.rows if key.startswith(f"{column}="))

    def _update(self, key: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.rows[key] = self.rows.get(key, 0) + batch.num_rows
        names = batch.schema.names
        if not self.shadow:
            for name, monitor in self.inputs.items():
                if f"input:{name}" in names:
                    monitor.update(key, batch.column(f"input:{name}"))
        prediction = "shadow_prediction" if self.shadow else "prediction"
        if "prediction" in self.outputs and prediction in names:
            self.outputs["prediction"].update(key, batch.column(prediction))
        matrix = self._probability_matrix(batch)
        if matrix is not None and self.classes is not None:
            for index, label in enumerate(self.classes):
                found = self.outputs.get(f"probability[{label}]")
                if found is not None:
                    found.update(key, matrix[:, index])
        columns = [f"input:{c}" for c in self.pca_columns]
        if self.pca is not None and not self.shadow and all(c in names for c in columns):
            from loopline.monitoring._multivariate import PCAWindow

            window = self.pca_windows.get(key)
            if window is None:
                window = self.pca_windows[key] = PCAWindow(self.pca)
            window.update(_matrix_from_batch(batch, columns))

    def _probability_matrix(self, batch: pa.RecordBatch) -> np.ndarray | None:
        name = "shadow_probabilities" if self.shadow else "probabilities"
        if self.classes is None or name not in batch.schema.names:
            return None
        return probability_matrix(batch.column(name), len(self.classes))

    def _probabilities(self, batch: pa.RecordBatch) -> None:
        import numpy as np

        matrix = self._probability_matrix(batch)
        if matrix is None:
            return
        matrix = matrix[~np.isnan(matrix).any(axis=1)]
        if self.sample_rate < 1.0:
            keep = np.random.default_rng(self.probability_rows).random(len(matrix))
            matrix = matrix[keep < self.sample_rate]
        self.probability_parts.append(matrix.astype(np.float32))
        self.probability_rows += len(matrix)

    def probabilities(self) -> np.ndarray | None:
        import numpy as np

        if not self.probability_parts:
            return None
        return np.concatenate(self.probability_parts).astype(np.float64)


def probability_matrix(column: pa.Array | pa.ChunkedArray, classes: int) -> np.ndarray | None:
    """A list<float64> column as a (rows, classes) matrix, NaN rows where null or of
    another length; None when no row has `classes` values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return None
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    matrix = np.full((len(column), classes), np.nan)
    good = lengths == classes
    if not good.any():
        return None
    picked = column.filter(pa.array(good))
    values = as_numbers(pc.list_flatten(picked))
    matrix[good] = values.reshape(-1, classes)
    return matrix


def _distinct(values: np.ndarray) -> list[str]:
    seen = {value for value in values.tolist() if value is not None}
    return sorted(seen)[: MAX_SEGMENT_VALUES * 5]


def _mask(values: np.ndarray, value: str) -> pa.Array:
    import pyarrow as pa

    return pa.array(values == value)


def _matrix(table: pa.Table, columns: list[str]) -> np.ndarray:
    import numpy as np

    return np.column_stack([as_numbers(table.column(name)) for name in columns])


def _matrix_from_batch(batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
    import numpy as np

    parts = []
    for name in columns:
        try:
            parts.append(as_numbers(batch.column(name)))
        except TypeError:
            parts.append(np.full(batch.num_rows, np.nan))
    return np.column_stack(parts)
