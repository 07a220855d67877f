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
        # each column is converted once per batch (not once per monitor and once more for
        # the PCA), and the probability matrix once (not once per use)
        columns = _BatchColumns.of(batch, self._probability_matrix(batch))
        self._update(ALL, columns)
        for column in self.segments:
            name = f"input:{column}"
            if name not in batch.schema.names:
                continue
            values = as_categories(batch.column(name))
            for value in _distinct(values):
                key = f"{column}={value}"
                if key not in self.rows and self._segment_count(column) >= MAX_SEGMENT_VALUES:
                    continue
                part = columns.filter(values == value)
                # as before: a segment whose rows hold no probabilities feeds none
                part.probabilities = self._probability_matrix(part.batch)
                self._update(key, part)
        self._probabilities(columns.probabilities)
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

    def _update(self, key: str, batch: _BatchColumns) -> None:
        if batch.rows == 0:
            return
        self.rows[key] = self.rows.get(key, 0) + batch.rows
        if not self.shadow:
            for name, monitor in self.inputs.items():
                found = batch.column(f"input:{name}", numeric=monitor.kind == "numeric")
                if found is not None:
                    monitor.update(key, found)
        prediction = "shadow_prediction" if self.shadow else "prediction"
        if "prediction" in self.outputs:
            found = batch.column(prediction, numeric=self.outputs["prediction"].kind == "numeric")
            if found is not None:
                self.outputs["prediction"].update(key, found)
        matrix = batch.probabilities
        if matrix is not None and self.classes is not None:
            for index, label in enumerate(self.classes):
                output = self.outputs.get(f"probability[{label}]")
                if output is not None:
                    output.update(key, matrix[:, index])
        columns = [f"input:{c}" for c in self.pca_columns]
        if self.pca is not None and not self.shadow and all(c in batch.names for c in columns):
            from loopline.monitoring._multivariate import PCAWindow

            window = self.pca_windows.get(key)
            if window is None:
                window = self.pca_windows[key] = PCAWindow(self.pca)
            window.update_columns([batch.numbers_or_nan(name) for name in columns])

    def _probability_matrix(self, batch: pa.RecordBatch) -> np.ndarray | None:
        name = "shadow_probabilities" if self.shadow else "probabilities"
        if self.classes is None or name not in batch.schema.names:
            return None
        return probability_matrix(batch.column(name), len(self.classes))

    def _probabilities(self, matrix: np.ndarray | None) -> None:
        import numpy as np

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


@dataclass
class _BatchColumns:
    """One batch's columns, each converted at most once: numeric columns as float64
    (NaN = null), the others as Arrow; the class probabilities as a matrix."""

    batch: pa.RecordBatch
    probabilities: np.ndarray | None
    numbers: dict[str, np.ndarray | None] = field(default_factory=dict)  # None: not numeric

    @classmethod
    def of(cls, batch: pa.RecordBatch, probabilities: np.ndarray | None) -> _BatchColumns:
        return cls(batch, probabilities)

    @property
    def rows(self) -> int:
        return int(self.batch.num_rows)

    @property
    def names(self) -> list[str]:
        return list(self.batch.schema.names)

    def column(self, name: str, *, numeric: bool) -> Any:
        """A numeric monitor gets float64 values (or the Arrow column when it holds no
        numbers: the monitor counts it as a type problem); any other gets the Arrow column.
        None when the batch has no such column."""
        if name not in self.batch.schema.names:
            return None
        if numeric:
            found = self._numbers(name)
            if found is not None:
                return found
        return self.batch.column(name)

    def numbers_or_nan(self, name: str) -> np.ndarray:
        """float64 values of a column, all NaN when it holds no numbers."""
        import numpy as np

        found = self._numbers(name)
        return np.full(self.rows, np.nan) if found is None else found

    def _numbers(self, name: str) -> np.ndarray | None:
        if name not in self.numbers:
            try:
                self.numbers[name] = as_numbers(self.batch.column(name))
            except TypeError:
                self.numbers[name] = None
        return self.numbers[name]

    def filter(self, mask: np.ndarray) -> _BatchColumns:
        """The rows where `mask` (a boolean array) is true, with the columns converted so
        far (the probability matrix is left to the caller)."""
        import pyarrow as pa

        part = _BatchColumns(self.batch.filter(pa.array(mask)), None)
        part.numbers = {
            name: None if values is None else values[mask] for name, values in self.numbers.items()
        }
        return part


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
    if (
        column.null_count == 0
        and pa.types.is_list(column.type)
        and (np.diff(column.offsets.to_numpy()) == classes).all()
    ):  # every row has `classes` values: the flat values reshaped, no row copied
        return as_numbers(pc.list_flatten(column)).reshape(-1, classes)
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


def _matrix(table: pa.Table, columns: list[str]) -> np.ndarray:
    import numpy as np

    return np.column_stack([as_numbers(table.column(name)) for name in columns])
