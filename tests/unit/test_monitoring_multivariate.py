"""Multivariate drift: PCA reconstruction error against sklearn, the band, the verdict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from loopline.errors import InvalidInput
from loopline.monitoring import PCAReference, PCAWindow, drift


def _correlated(rows: int, seed: int, *, broken: bool = False) -> np.ndarray:
    """Four columns driven by one factor; `broken`: the last two no longer follow it."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0, 1, rows)
    noise = rng.normal(0, 0.3, (rows, 4))
    matrix = np.column_stack([factor, 2 * factor + 1, -factor, 0.5 * factor]) + noise
    if broken:
        matrix[:, 2:] = rng.normal(0, 1, (rows, 2)) * matrix[:, 2:].std(axis=0)
    return matrix


def test_reconstruction_error_equals_sklearns_pca_on_standardised_values() -> None:
    matrix = _correlated(5000, 0)
    reference = PCAReference.build(matrix)
    standard = (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)
    pca = PCA(n_components=0.65, svd_solver="full").fit(standard)
    rebuilt = pca.inverse_transform(pca.transform(standard))
    expected = np.linalg.norm(standard - rebuilt, axis=1)
    assert reference.components.shape == pca.components_.shape
    assert np.allclose(reference.reconstruction_error(matrix), expected, atol=1e-6)


def test_a_window_that_breaks_the_correlations_drifts_and_one_that_keeps_them_does_not() -> None:
    reference = PCAReference.build(_correlated(20_000, 1))
    same, broken = PCAWindow(reference), PCAWindow(reference)
    same.update(_correlated(5000, 2))
    broken.update(_correlated(5000, 3, broken=True))
    kept = same.verdict()
    assert not kept["drifted"] and kept["lower"] <= kept["reconstruction_error"] <= kept["upper"]
    moved = broken.verdict()
    assert moved["drifted"] and moved["reconstruction_error"] > moved["upper"]
    assert set(moved) >= {"reconstruction_error", "reference", "upper", "drifted"}


def test_missing_and_infinite_values_are_imputed_with_the_mean() -> None:
    matrix = _correlated(1000, 4)
    reference = PCAReference.build(matrix)
    holes = matrix[:3].copy()
    holes[0, 1], holes[1, 2], holes[2, 0] = np.nan, np.inf, -np.inf
    imputed = matrix[:3].copy()
    imputed[0, 1], imputed[1, 2], imputed[2, 0] = reference.mean[[1, 2, 0]]
    assert np.allclose(
        reference.reconstruction_error(holes), reference.reconstruction_error(imputed)
    )


def test_windows_merge_and_round_trip_through_json() -> None:
    matrix = _correlated(2000, 5)
    reference = PCAReference.build(matrix)
    whole, first, second = PCAWindow(reference), PCAWindow(reference), PCAWindow(reference)
    whole.update(matrix)
    first.update(matrix[:600])
    second.update(matrix[600:])
    first.merge(second)
    assert first.rows == whole.rows and first.total == pytest.approx(whole.total)
    again = PCAReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert np.allclose(again.reconstruction_error(matrix), reference.reconstruction_error(matrix))
    window = PCAWindow.from_dict(json.loads(json.dumps(whole.to_dict())), again)
    assert window.verdict() == pytest.approx(whole.verdict())


def test_an_empty_window_and_uncorrelated_columns_do_not_drift() -> None:
    reference = PCAReference.build(_correlated(500, 6))
    assert PCAWindow(reference).verdict()["reconstruction_error"] is None
    independent = PCAReference.build(np.random.default_rng(7).normal(0, 1, (500, 2)))
    window = PCAWindow(independent)
    window.update(np.random.default_rng(8).normal(5, 3, (100, 2)))
    assert window.verdict()["drifted"] is False  # the PCA keeps both dimensions


def test_drift_reports_the_multivariate_figure() -> None:
    columns = ["a", "b", "c", "d"]
    reference = pd.DataFrame(_correlated(4000, 9), columns=columns)
    current = pd.DataFrame(_correlated(4000, 10, broken=True), columns=columns)
    report = drift(reference, current)
    assert report.multivariate["drifted"] is True
    assert report.multivariate["columns"] == columns
    small = drift(reference.head(50), current.head(50))
    assert small.multivariate["reconstruction_error"] is None and "reason" in small.multivariate


def test_bad_matrices_are_refused() -> None:
    reference = PCAReference.build(_correlated(100, 11))
    with pytest.raises(InvalidInput, match="2-D"):
        reference.reconstruction_error(np.zeros(4))
    with pytest.raises(InvalidInput, match="3 columns; the reference has 4"):
        reference.reconstruction_error(np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match="numbers"):
        reference.reconstruction_error([["a", "b", "c", "d"]])
    with pytest.raises(InvalidInput, match="at least 2 numeric columns"):
        PCAReference.build(np.zeros((100, 1)))
    with pytest.raises(InvalidInput, match="at least 20 reference rows"):
        PCAReference.build(np.zeros((5, 3)))
    with pytest.raises(InvalidInput, match="variance"):
        PCAReference.build(_correlated(100, 12), variance=1.5)
    with pytest.raises(InvalidInput, match="PCAWindow"):
        PCAWindow(reference).merge("window")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="PCA reference"):
        PCAReference.from_dict({"mean": [0.0]})


def test_column_errors_equal_the_stacked_matrix_errors_bit_for_bit() -> None:
    from loopline.monitoring._multivariate import ROW_CHUNK

    reference = PCAReference.build(_correlated(5000, 0))
    window = _correlated(ROW_CHUNK + 123, 1)  # more than one chunk, the last one short
    window[::7, 1] = np.nan
    window[::11, 2] = np.inf
    columns = [window[:, index].copy() for index in range(window.shape[1])]

    assert np.array_equal(reference.column_errors(columns), reference.reconstruction_error(window))
    by_matrix, by_columns = PCAWindow(reference), PCAWindow(reference)
    by_matrix.update(window)
    by_columns.update_columns(columns)
    assert (by_columns.rows, by_columns.total) == (by_matrix.rows, by_matrix.total)


def test_column_errors_reject_another_number_of_columns_or_unequal_lengths() -> None:
    reference = PCAReference.build(_correlated(500, 0))
    with pytest.raises(InvalidInput, match="4"):
        reference.column_errors([np.zeros(10)] * 3)
    with pytest.raises(InvalidInput, match="one length"):
        reference.column_errors([np.zeros(10)] * 3 + [np.zeros(9)])
    assert reference.column_errors([np.zeros(0)] * 4).size == 0
