"""Multivariate drift: PCA reconstruction error of the window against the reference.

As NannyML's data reconstruction drift: standardise every numeric column with the
reference's mean and std, put the column mean (0) where a value is missing, fit a PCA
that keeps 65 % of the variance (sklearn's covariance solver, written out), and measure
each row's Euclidean distance to its reconstruction. The reference's own errors, in 10
chunks, give the band mean +/- 3 sd of the chunk means; a window whose mean error leaves
it has drifted: the columns no longer relate to each other as they did, even if each one
alone looks the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopline.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

#: the PCA is fitted on at most this many reference rows (a seeded sample beyond)
MAX_FIT_ROWS = 200_000
#: rows standardised and projected at a time (keeps temporaries to a few MB)
ROW_CHUNK = 65_536


def _as_matrix(matrix: object, columns: int | None = None) -> FloatArray:
    if isinstance(matrix, (str, bytes)) or matrix is None:
        raise InvalidInput(f"matrix must be a 2-D array of numbers, got {type(matrix).__name__}")
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"matrix must be a 2-D array of numbers: {exc}") from exc
    if array.ndim != 2:
        raise InvalidInput(f"matrix must be 2-D (rows x columns), got {array.ndim} dimensions")
    if columns is not None and array.shape[1] != columns:
        raise InvalidInput(f"matrix has {array.shape[1]} columns; the reference has {columns}")
    return array


@dataclass(frozen=True, eq=False)
class PCAReference:
    """The reference's standardisation, principal components and chunk-wise error band."""

    mean: FloatArray
    scale: FloatArray
    center: FloatArray
    components: FloatArray
    chunk_errors: FloatArray

    @classmethod
    def build(cls, matrix: object, *, variance: float = 0.65, chunks: int = 10) -> PCAReference:
        """Fit on the reference's numeric columns (rows x columns, NaN = missing).

        Returns a PCAReference; raises InvalidInput for fewer than 2 columns, fewer rows than
        2 x chunks, or a variance share outside (0, 1).
        """
        array = _as_matrix(matrix)
        if array.shape[1] < 2:
            raise InvalidInput("multivariate drift needs at least 2 numeric columns")
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 2:
            raise InvalidInput(f"chunks must be an integer >= 2, got {chunks!r}")
        if array.shape[0] < 2 * chunks:
            raise InvalidInput(
                f"multivariate drift needs at least {2 * chunks} reference rows, "
                f"got {array.shape[0]}"
            )
        if not isinstance(variance, (int, float)) or not 0 < variance < 1:
            raise InvalidInput(f"variance must be in (0, 1), got {variance!r}")
        mean, scale = _column_moments(array)
        rows = np.arange(array.shape[0])
        if rows.size > MAX_FIT_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows.size, MAX_FIT_ROWS, replace=False))
        center, components = _principal_components(_standardise(array[rows], mean, scale), variance)
        reference = cls(mean, scale, center, components, np.zeros(0))
        errors = reference.reconstruction_error(array)
        chunk_errors = np.array([part.mean() for part in np.array_split(errors, chunks)])
        return cls(mean, scale, center, components, chunk_errors)

    @property
    def expected(self) -> float:
        """The mean of the reference's chunk errors."""
        return float(self.chunk_errors.mean())

    @property
    def upper(self) -> float:
        """The band's top: mean + 3 sd of the reference's chunk errors."""
        return self.expected + 3 * float(self.chunk_errors.std())

    @property
    def lower(self) -> float:
        """The band's bottom: mean - 3 sd of the reference's chunk errors (at least 0)."""
        return max(self.expected - 3 * float(self.chunk_errors.std()), 0.0)

    def reconstruction_error(self, batch: object) -> FloatArray:
        """Each row's distance to its PCA reconstruction (standardised units).

        Raises InvalidInput when the batch is not 2-D or has another number of columns.
        """
        array = _as_matrix(batch, self.mean.size)
        errors = np.empty(array.shape[0])
        with _one_blas_thread():
            for start in range(0, array.shape[0], ROW_CHUNK):  # bounded temporaries
                part = _standardise(array[start : start + ROW_CHUNK], self.mean, self.scale)
                errors[start : start + ROW_CHUNK] = self._errors(part)
        return errors

    def column_errors(self, columns: list[FloatArray]) -> FloatArray:
        """`reconstruction_error` of the matrix whose columns are `columns` (float64 arrays
        of one length, NaN = missing), without building that matrix: the rows are copied
        into a small buffer a chunk at a time (the same numbers, bit for bit, at a third of
        the time and memory of stacking a million-row batch first).

        Raises InvalidInput for another number of columns or columns of unequal lengths.
        """
        if len(columns) != self.mean.size:
            raise InvalidInput(f"{len(columns)} columns given; the reference has {self.mean.size}")
        rows = columns[0].size if columns else 0
        if any(column.shape != (rows,) for column in columns):
            raise InvalidInput("the columns must be 1-D arrays of one length")
        errors = np.empty(rows)
        buffer = np.empty((min(rows, ROW_CHUNK), len(columns)))
        with _one_blas_thread():
            for start in range(0, rows, ROW_CHUNK):
                end = min(start + ROW_CHUNK, rows)
                part = buffer[: end - start]
                for index, column in enumerate(columns):
                    part[:, index] = column[start:end]
                part -= self.mean
                part /= self.scale
                np.nan_to_num(part, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                errors[start:end] = self._errors(part)
        return errors

    def _errors(self, standard: FloatArray) -> FloatArray:
        """Errors of standardised rows; `standard` is overwritten (centred in place)."""
        # the components are orthonormal: |x - rebuilt|^2 = |x|^2 - |projection|^2
        centred = standard
        centred -= self.center
        # a matrix product on one BLAS thread (see _one_blas_thread): 3x einsum's speed
        projected = centred @ self.components.T
        squared = np.einsum("ij,ij->i", centred, centred)
        squared -= np.einsum("ij,ij->i", projected, projected)
        errors: FloatArray = np.sqrt(np.maximum(squared, 0.0))
        return errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `PCAReference.from_dict` reads it back."""
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "center": self.center.tolist(),
            "components": self.components.tolist(),
            "chunk_errors": self.chunk_errors.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PCAReference:
        """The reference `to_dict` wrote; raises InvalidInput when it is not one."""
        try:
            parts = [
                np.asarray(data[key], dtype=np.float64)
                for key in ("mean", "scale", "center", "components", "chunk_errors")
            ]
            if parts[3].ndim != 2 or parts[3].shape[1] != parts[0].size:
                raise ValueError("components do not match the columns")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a PCA reference summary: {exc}") from exc
        return cls(*parts)


@dataclass(eq=False)
class PCAWindow:
    """The window's streaming mean reconstruction error (count and sum: mergeable)."""

    reference: PCAReference
    rows: int = 0
    total: float = 0.0

    def update(self, batch: object) -> None:
        """Add one batch (rows x the reference's columns, NaN = missing)."""
        errors = self.reference.reconstruction_error(batch)
        self.rows += int(errors.size)
        self.total += float(errors.sum())

    def update_columns(self, columns: list[FloatArray]) -> None:
        """Add one batch given as its columns (float64, NaN = missing), in the reference's
        column order: the same as `update` of the stacked matrix, without stacking it."""
        errors = self.reference.column_errors(columns)
        self.rows += int(errors.size)
        self.total += float(errors.sum())

    def merge(self, other: PCAWindow) -> None:
        """Add another window over the same reference into this one."""
        if not isinstance(other, PCAWindow):
            raise InvalidInput(f"can only merge a PCAWindow, got {type(other).__name__}")
        self.rows += other.rows
        self.total += other.total

    def verdict(self) -> dict[str, Any]:
        """{"reconstruction_error", "reference", "upper", "lower", "drifted"} (JSON-safe).

        An empty window has reconstruction_error None and drifted False; so does a PCA that
        keeps every dimension (uncorrelated columns: nothing is lost, the error is rounding).
        """
        reference = self.reference
        error = self.total / self.rows if self.rows else None
        kept, columns = reference.components.shape
        drifted = (
            error is not None and kept < columns and not reference.lower <= error <= reference.upper
        )
        return {
            "reconstruction_error": error if error is None or math.isfinite(error) else None,
            "reference": reference.expected,
            "upper": reference.upper,
            "lower": reference.lower,
            "drifted": bool(drifted),
            "components": kept,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (without the reference)."""
        return {"rows": self.rows, "total": self.total}

    @classmethod
    def from_dict(cls, data: dict[str, Any], reference: PCAReference) -> PCAWindow:
        """The window `to_dict` wrote, over `reference`; raises InvalidInput otherwise."""
        try:
            return cls(reference, int(data["rows"]), float(data["total"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a PCA window summary: {exc}") from exc


def _column_moments(array: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and std of each column's finite values (0 and 1 where there are none, std 1 if 0)."""
    mean, scale = np.zeros(array.shape[1]), np.ones(array.shape[1])
    for column in range(array.shape[1]):
        values = array[:, column]
        values = values[np.isfinite(values)]
        if values.size:
            with np.errstate(over="ignore", invalid="ignore"):
                mean[column], spread = values.mean(), values.std()
            if np.isfinite(spread) and spread > 0:
                scale[column] = spread
    mean[~np.isfinite(mean)] = 0.0
    return mean, scale


def _principal_components(sample: FloatArray, variance: float) -> tuple[FloatArray, FloatArray]:
    """The mean and the fewest principal axes (rows) that explain `variance` of the sample.

    sklearn's PCA(n_components=variance, svd_solver="covariance_eigh") computed with
    einsum: a BLAS matrix product takes many times longer on a busy two-core machine.
    """
    center = sample.mean(axis=0)
    centred = sample - center
    covariance = np.einsum("ij,ik->jk", centred, centred) / max(sample.shape[0] - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    total = values.sum()
    if total <= 0:  # every column constant: keep one axis, every error is 0
        return center, vectors[:, :1].T.copy()
    kept = int(np.searchsorted(np.cumsum(values) / total, variance, side="right")) + 1
    return center, vectors[:, : min(kept, values.size)].T.copy()


def _one_blas_thread() -> Any:
    """A context in which BLAS uses one thread: with several, on a busy two-core machine,
    its threads wait for each other and a product takes many times longer. The libraries
    are found once per process (finding them reads /proc: ~10 ms a time)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        # installed with scikit-learn (untyped)
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


_BLAS_CONTROLLER: Any = None


def _standardise(values: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:
    standard = (values - mean) / scale
    return np.nan_to_num(standard, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
