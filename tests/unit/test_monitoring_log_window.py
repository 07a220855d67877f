"""The window's batches: DuckDB's one-batch-per-file output joined to the asked size,
read one batch ahead in a thread; every row once, errors raised to the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.monitoring import _log_window


def _write_files(folder: Path, files: int, rows: int) -> list[Path]:
    """`files` Parquet files of `rows` rows with a struct of inputs, as the log holds."""
    paths = []
    for index in range(files):
        values = np.arange(index * rows, (index + 1) * rows, dtype=np.float64)
        table = pa.table(
            {
                "model_version": pa.array(["m/1"] * rows),
                "prediction": pa.array(values > 0),
                "inputs": pa.StructArray.from_arrays([pa.array(values)], names=["x"]),
            }
        )
        path = folder / f"part-{index}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def test_small_files_are_joined_into_batches_of_the_asked_size_and_every_row_comes_once(
    tmp_path: Path,
) -> None:
    paths = _write_files(tmp_path, files=12, rows=1000)

    found = list(_log_window.batches(paths, None, None, inputs=["x"], batch_rows=3500))

    sizes = [batch.num_rows for batch in found]
    assert sum(sizes) == 12_000
    assert all(size >= 3500 for size in sizes[:-1]) and max(sizes) < 3500 + 1000
    values = np.concatenate([batch.column("input:x").to_numpy() for batch in found])
    assert np.array_equal(np.sort(values), np.arange(12_000, dtype=np.float64))


def test_a_part_larger_than_the_batch_size_is_passed_on_as_it_is() -> None:
    parts = [pa.record_batch({"a": np.arange(10)}), pa.record_batch({"a": np.arange(3)})]
    assert [b.num_rows for b in _log_window._coalesced(iter(parts), 5)] == [10, 3]
    assert list(_log_window._coalesced(iter([]), 5)) == []


def test_an_error_in_the_reader_is_raised_to_the_caller() -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"a": [1]})
        raise OSError("disk gone")

    read = _log_window._read_ahead(failing)
    assert next(read).num_rows == 1
    with pytest.raises(OSError, match="disk gone"):
        next(read)


def test_a_caller_that_stops_early_stops_the_reader_thread() -> None:
    produced: list[int] = []

    def endless() -> Iterator[pa.RecordBatch]:
        index = 0
        while True:
            produced.append(index)
            yield pa.record_batch({"a": [index]})
            index += 1

    read = _log_window._read_ahead(endless)
    assert next(read).column("a").to_pylist() == [0]
    read.close()  # what a caller's `break` does to the generator

    assert not any(t.name == "log-window-reader" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3  # one handed over, at most one waiting, one being made
