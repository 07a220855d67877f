"""Per-file sketches (predictions/_sketch.py) and their merge into the drift module's
windows (monitoring/_sketches.py), against the exact accumulators on the same rows."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from loopline.errors import InvalidInput
from loopline.monitoring._categorical import (
    CategoricalReference,
    CategoricalWindow,
    categorical_statistics,
)
from loopline.monitoring._numeric import NumericReference, NumericWindow, numeric_statistics
from loopline.monitoring._sketches import (
    MergedColumn,
    categorical_window,
    merge_sketches,
    numeric_window,
)
from loopline.predictions._sketch import (
    MAGIC,
    MAX_EXACT_VALUES,
    ColumnSketch,
    FileSketch,
    encode,
    read_file_sketch,
    sketch_column,
    sketch_table,
)

#: KLL k=200: normalised rank error ~1.3 % (99 % confidence)
RANK_ERROR = 0.02


def _file(columns: dict[str, pa.Array], version: str = "m/1") -> FileSketch:
    rows = len(next(iter(columns.values())))
    inputs = pa.StructArray.from_arrays(list(columns.values()), list(columns))
    table = pa.table({"model_version": pa.array([version] * rows), "inputs": inputs})
    return read_file_sketch(encode(sketch_table(table)))  # through the blob, as stored


def _merged(parts: list[np.ndarray], name: str = "x") -> MergedColumn:
    merged = merge_sketches([_file({name: pa.array(p, from_pandas=True)}) for p in parts])
    return merged["m/1"][1][f"input:{name}"]


def _exact(reference: NumericReference, parts: list[np.ndarray]) -> NumericWindow:
    window = NumericWindow(reference)
    for part in parts:
        window.update(part)
    return window


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_merged_numeric_statistics_are_within_the_rank_error(shift: float) -> None:
    rng = np.random.default_rng(1)
    reference = NumericReference.build(rng.normal(size=20_000))
    parts = [rng.normal(loc=shift, size=14_000) for _ in range(24)]

    sketched = numeric_statistics(reference, numeric_window(reference, _merged(parts)))
    exact = numeric_statistics(reference, _exact(reference, parts))

    assert abs(sketched["ks"] - exact["ks"]) < RANK_ERROR
    assert abs(sketched["psi"] - exact["psi"]) < 0.01 + 0.05 * exact["psi"]
    # W1's gap is at most the integral of the CDF's error: the rank error over the span
    # where the CDFs differ (a few sd). KLL compacts at random, so it varies run to run
    # (0.024 seen once at shift 1.0); twice the rank error still sits well below the
    # 0.1 sd at which a drift verdict turns.
    assert abs(sketched["wasserstein"] - exact["wasserstein"]) < 2 * RANK_ERROR


def test_counts_nulls_infinities_and_moments_are_exact() -> None:
    rng = np.random.default_rng(2)
    parts = [rng.normal(size=3000) for _ in range(3)]
    parts[0][:10] = np.nan
    parts[1][:4] = np.inf
    parts[2][:2] = -np.inf
    reference = NumericReference.build(rng.normal(size=5000))

    window = numeric_window(reference, _merged(parts))
    exact = _exact(reference, parts)

    assert window.moments.count == exact.moments.count == 9000 - 16
    assert (window.moments.nulls, window.moments.nonfinite) == (10, 6)
    assert window.moments.minimum == exact.moments.minimum
    assert window.moments.maximum == exact.moments.maximum
    assert window.moments.total == pytest.approx(exact.moments.total)
    assert window.moments.squares == pytest.approx(exact.moments.squares)
    assert int(window.counts.sum()) == window.moments.count


def test_values_outside_the_reference_range_are_counted_in_the_tails() -> None:
    reference = NumericReference.build(np.linspace(0, 1, 1000))
    parts = [np.concatenate([np.full(100, -5.0), np.linspace(0, 1, 800), np.full(100, 7.0)])]

    window = numeric_window(reference, _merged(parts))

    # within the rank error (1,000 values: the sketch has compacted once)
    assert abs(window.below_min - 100) <= 1000 * RANK_ERROR
    assert abs(window.above_max - 100) <= 1000 * RANK_ERROR
    assert window.below_sum == pytest.approx(-5.0 * window.below_min)
    assert window.above_sum == pytest.approx(7.0 * window.above_max)
    inside = numeric_window(reference, _merged([np.linspace(0.1, 0.9, 5000)]))
    assert (inside.below_min, inside.above_max) == (0, 0)  # the sketch's min and max are exact


def test_a_small_file_is_sketched_exactly() -> None:
    values = np.arange(150, dtype=np.float64) % 7  # few values, many ties
    reference = NumericReference.build(np.arange(700, dtype=np.float64) % 7)

    window = numeric_window(reference, _merged([values]))

    np.testing.assert_array_equal(window.counts, _exact(reference, [values]).counts)


def test_exact_value_counts_merge_into_the_same_categorical_window() -> None:
    rng = np.random.default_rng(3)
    reference = CategoricalReference.build(rng.choice(["a", "b", "c"], 1000))
    parts = [rng.choice(["a", "b", "c", "new"], 500).astype(object) for _ in range(4)]
    parts[0][:7] = None
    exact = CategoricalWindow(reference)
    for part in parts:
        exact.update(part)

    merged = merge_sketches([_file({"r": pa.array(p)}) for p in parts])["m/1"][1]["input:r"]
    window = categorical_window(reference, merged)

    np.testing.assert_array_equal(window.counts, exact.counts)
    assert (window.nulls, window.unseen, window.other) == (exact.nulls, exact.unseen, 0)
    assert categorical_statistics(reference, window) == categorical_statistics(reference, exact)


def test_integers_keep_their_text_names_for_categorical_monitors() -> None:
    predictions = pa.array(np.array([0, 1, 1, 2, 1], dtype=np.int64))
    sketch = sketch_column(predictions)
    assert sketch is not None and sketch.kind == "numeric"
    assert sketch.values == {"0": 1, "1": 3, "2": 1}
    floats = sketch_column(pa.array([2.5, 3.0, np.nan], from_pandas=True))
    assert floats is not None and floats.values == {"2.5": 1, "3": 1} and floats.nulls == 1


def test_many_distinct_texts_use_a_frequent_items_sketch() -> None:
    rng = np.random.default_rng(4)
    common = rng.choice(["a", "b"], 8000)
    rare = np.array([f"id{i}" for i in range(3000)])
    values = np.concatenate([common, rare])
    sketch = sketch_column(pa.array(values))
    assert sketch is not None and sketch.values is None and sketch.frequent is not None
    reference = CategoricalReference.build(np.concatenate([common, rare[:10]]))

    merged = merge_sketches([_file({"r": pa.array(values)})])["m/1"][1]["input:r"]
    window = categorical_window(reference, merged)

    assert window.rows == len(values)
    counts = dict(zip(reference.categories, window.counts.tolist(), strict=True))
    assert counts["a"] == int((common == "a").sum()) and counts["b"] == int((common == "b").sum())


def test_a_numeric_column_past_the_value_limit_keeps_no_value_counts() -> None:
    values = np.arange(MAX_EXACT_VALUES + 1, dtype=np.float64)
    merged = _merged([values])
    assert merged.values is None
    reference = CategoricalReference.build(["1", "2"])
    with pytest.raises(InvalidInput, match="no value counts"):
        categorical_window(reference, merged)


def test_a_column_missing_from_one_file_counts_its_rows_as_nulls() -> None:
    first = _file({"x": pa.array([1.0, 2.0]), "y": pa.array([3.0, 4.0])})
    second = _file({"x": pa.array([5.0, 6.0, 7.0])})
    merged = merge_sketches([first, second])
    rows, columns = merged["m/1"]
    assert rows == 5
    assert columns["input:y"].moments.count == 2 and columns["input:y"].moments.nulls == 3


def test_versions_are_sketched_apart() -> None:
    inputs = pa.StructArray.from_arrays([pa.array([1.0, 2.0, 3.0])], ["x"])
    table = pa.table({"model_version": ["a/1", "b/1", "a/1"], "inputs": inputs})
    found = sketch_table(table)
    assert found.rows == {"a/1": 2, "b/1": 1}
    assert found.columns["a/1"]["input:x"].total == 4.0


def test_probabilities_of_one_length_are_sketched_per_class() -> None:
    lists = pa.array([[0.2, 0.8], [0.6, 0.4], None])
    table = pa.table({"model_version": ["m/1"] * 3, "probabilities": lists})
    columns = sketch_table(table).columns["m/1"]
    assert columns["probability#1"].count == 2 and columns["probability#1"].nulls == 1
    mixed = pa.table({"model_version": ["m/1"] * 2, "probabilities": pa.array([[1.0], [0.5, 0.5]])})
    assert not [n for n in sketch_table(mixed).columns["m/1"] if n.startswith("probability")]


def test_a_numeric_and_a_text_sketch_do_not_merge() -> None:
    numbers = _file({"x": pa.array([1.0])})
    text = _file({"x": pa.array(["a"])})
    with pytest.raises(InvalidInput, match="cannot merge"):
        merge_sketches([numbers, text])


def test_an_all_null_column_merges_as_nulls() -> None:
    nulls = _file({"x": pa.nulls(3)})
    numbers = _file({"x": pa.array([1.0, 2.0])})
    column = merge_sketches([nulls, numbers])["m/1"][1]["input:x"]
    assert column.kind == "numeric" and column.moments.nulls == 3 and column.moments.count == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a sketch",
        MAGIC,
        MAGIC + struct.pack("<I", 5) + b"{bad}",
        MAGIC + struct.pack("<I", 13) + b'{"format": 9}',
        MAGIC + struct.pack("<I", 2) + b"[]",
    ],
)
def test_unreadable_blobs_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        read_file_sketch(data)


def test_a_blob_with_a_truncated_sketch_is_refused() -> None:
    blob = encode(sketch_table(pa.table({"model_version": ["m"], "prediction": [1.5]})))
    with pytest.raises(InvalidInput, match=r"outside the blob|unreadable"):
        read_file_sketch(blob[:-8])
    with pytest.raises(InvalidInput):
        read_file_sketch("text")  # type: ignore[arg-type]


def test_a_window_needs_a_reference_of_its_kind() -> None:
    with pytest.raises(InvalidInput, match="NumericReference"):
        numeric_window("edges", MergedColumn("numeric"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="CategoricalReference"):
        categorical_window(None, MergedColumn("categorical"))  # type: ignore[arg-type]


def test_nested_columns_are_not_sketched() -> None:
    assert sketch_column(pa.array([[1, 2]])) is None
    assert ColumnSketch("numeric", 0, 0).minimum == math.inf


def test_the_ks_p_value_past_the_limit_is_kolmogorovs_within_a_tenth_of_a_percent() -> None:
    from scipy.stats import kstwo

    from loopline.monitoring._numeric import KS_LIMIT_N

    rng = np.random.default_rng(5)
    reference = NumericReference.build(rng.normal(size=40_000))
    window = _exact(reference, [rng.normal(0.012, 1.0, 60_000)])
    stats = numeric_statistics(reference, window)
    effective = round(40_000 * 60_000 / 100_000)
    assert effective > KS_LIMIT_N
    assert stats["ks_pvalue"] == pytest.approx(kstwo.sf(stats["ks"], effective), rel=1e-2)
    assert 1e-6 < stats["ks_pvalue"] < 1


def _watch(inputs: dict[str, Any], classes: list[Any] | None = None) -> Any:
    from loopline.monitoring._sections import VersionWatch

    # the version and reference records are not read by windows_for
    return VersionWatch(None, "stable", None, classes, inputs=inputs)  # type: ignore[arg-type]


def _sketch_window(files: list[FileSketch]) -> Any:
    from loopline.monitoring._sketch_run import SketchWindow
    from loopline.monitoring._sketches import SketchPlan

    return SketchWindow(SketchPlan(merge_sketches(files), [], [], []))


def test_windows_for_builds_each_monitored_column_from_the_merge() -> None:
    from loopline.monitoring._columns import ColumnMonitor
    from loopline.monitoring._sketch_run import windows_for

    rng = np.random.default_rng(6)
    watch = _watch(
        {
            "x": ColumnMonitor.build("x", "numeric", rng.normal(size=500)),
            "code": ColumnMonitor.build("code", "categorical", ["1", "2", "3"]),
        }
    )
    codes = pa.array(rng.integers(1, 4, 400))
    sketch = _sketch_window([_file({"x": pa.array(rng.normal(size=400)), "code": codes})])

    windows = windows_for({"m/1": watch}, sketch)["m/1"]

    assert isinstance(windows["input:x"], NumericWindow) and windows["input:x"].rows == 400
    assert isinstance(windows["input:code"], CategoricalWindow)
    assert windows["input:code"].rows == 400 and windows["input:code"].unseen_rows == 0


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("numeric", pa.array(["a", "b"]), "text was sketched"),
        ("categorical", pa.array(np.arange(MAX_EXACT_VALUES + 5, dtype=float)), "no value counts"),
    ],
)
def test_windows_for_refuses_sketches_that_cannot_stand_for_the_rows(
    kind: str, values: pa.Array, message: str
) -> None:
    from loopline.monitoring._columns import ColumnMonitor
    from loopline.monitoring._sketch_run import windows_for

    reference = np.arange(10, dtype=float) if kind == "numeric" else ["1", "2"]
    watch = _watch({"x": ColumnMonitor.build("x", kind, reference)})
    with pytest.raises(InvalidInput, match=message):
        windows_for({"m/1": watch}, _sketch_window([_file({"x": values})]))
