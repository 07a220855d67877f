"""The prediction log's writer never drops a batch for one bad value: a request that
cannot be encoded goes to rejected/ with its reason, the others to the log (issue 11,
defect 3). Real files, the real reader (DuckDB); records built directly, past the HTTP
door that refuses such values, since the writer must hold whatever reaches it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loopline.predictions import (
    Block,
    PredictionBatch,
    PredictionLog,
    PredictionRecord,
    read_log_files,
    read_predictions,
    read_rejected,
)
from loopline.predictions._journal_frames import (
    append_frame,
    decode_batches,
    encode_batch,
    encode_entry,
    read_frames,
)
from loopline.predictions._writer import spool_group
from loopline.project import Stores

T0 = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
NAMES = ("plan", "age")


def _record(request_id: str, columns: list[list[Any]], at: datetime = T0) -> PredictionRecord:
    """A request whose inputs are `columns` as the client sent them (no signature check)."""
    rows = len(columns[0])
    return PredictionRecord(
        request_id=request_id,
        time=at,
        deployment="churn",
        model_version="churn/1",
        runtime_version="churn/2",
        endpoint="predict",
        predictions=np.arange(rows, dtype=np.int64) % 2,
        probabilities=np.full((rows, 2), 0.5),
        latency_ms=1.5,
        block=Block(tuple(f"c{i}" for i in range(len(columns))), rows, None, columns=columns),
    )


def test_one_request_no_longer_erases_a_batch_of_the_prediction_log(project: Stores) -> None:
    """60 good answers around one poison request (2**63 in a long column): 60 in the log,
    the poison one in rejected/ with the reason (it used to cost all 61)."""
    log = PredictionLog(project, flush_seconds=60)
    for i in range(61):
        age = 2**63 if i == 30 else 20 + i
        log(_record("poison" if i == 30 else f"good-{i}", [["pro"], [age]]))
    log.close()

    table = read_predictions("churn", stores=project)
    assert table.num_rows == 60
    assert sorted(table.column("request_id").to_pylist()) == sorted(
        f"good-{i}" for i in range(61) if i != 30
    )
    [rejected] = read_rejected("churn", stores=project)
    assert rejected["request_id"] == "poison"
    assert rejected["inputs"] == [{"c0": "pro", "c1": 2**63}]
    assert "OverflowError" in rejected["reason"]
    assert rejected["prediction"] == [0] and rejected["model_version"] == "churn/1"


def test_a_merged_batch_is_cut_into_requests_to_find_the_bad_one(tmp_path: Path) -> None:
    """What the server logs under load: one PredictionBatch for many requests."""
    good = [PredictionBatch.of(_record(f"r{i}", [["a"], [i]])) for i in range(5)]
    bad = PredictionBatch.of(_record("bad", [["\ud800"], [1]]))
    merged = _merge([*good[:2], bad, *good[2:]])
    written = spool_group(tmp_path / "spool", tmp_path / "rejected", "churn", T0, [merged])
    assert (written.rows, written.rejected) == (5, 1)
    table = read_log_files(written.files)
    assert sorted(table.column("request_id").to_pylist()) == [f"r{i}" for i in range(5)]
    line = (tmp_path / "rejected" / "churn").glob("*.jsonl").__next__().read_text()
    assert line.isascii()  # the lone surrogate is kept as its escape
    assert json.loads(line)["inputs"] == [{"c0": "\ud800", "c1": 1}]


def test_arrays_objects_and_mixed_types_are_logged_as_text(project: Stores) -> None:
    """Values no signature allows, should they get in: logged as their JSON, so that
    the log's files still read as one table."""
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("a", [[1.5], [True]]))
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("b", [[[1, 2]], [{"x": None}]], at=T0 + timedelta(seconds=1)))
        log(_record("c", [["text"], [3]], at=T0 + timedelta(seconds=2)))
    table = read_predictions("churn", stores=project)
    assert [row["inputs"] for row in table.to_pylist()] == [  # DuckDB: text wins
        {"c0": "1.5", "c1": "true"},
        {"c0": "[1, 2]", "c1": '{"x": null}'},
        {"c0": "text", "c1": "3"},
    ]


# -- property: whatever JSON holds, every request is logged or rejected, exactly once -----

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=()), max_size=5)  # lone surrogates too
    | st.sampled_from([2**63, -(2**63) - 1, 2**64, "\ud800", "a\udfff"])  # more often
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@st.composite
def batches(draw: st.DrawFn) -> list[PredictionBatch]:
    """Requests over the same two columns, one to three rows each, arbitrary values;
    some merged into one batch (as the server logs a micro-batch)."""
    found = []
    for i in range(draw(st.integers(1, 8))):
        rows = draw(st.integers(1, 3))
        columns = [draw(st.lists(JSON_VALUES, min_size=rows, max_size=rows)) for _ in NAMES]
        at = T0 + timedelta(milliseconds=draw(st.integers(0, 10)))
        found.append(PredictionBatch.of(_record(f"r{i}", columns, at)))
    if len(found) > 1 and draw(st.booleans()):
        cut = draw(st.integers(1, len(found)))
        found = [_merge(found[:cut]), *found[cut:]]
    return found


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(groups=batches(), journaled=st.booleans())
def test_every_request_is_logged_or_rejected_exactly_once(
    groups: list[PredictionBatch], journaled: bool
) -> None:
    expected = {
        rid: int(n) for b in groups for rid, n in zip(b.request_ids, b.row_counts, strict=True)
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if journaled:  # the way of durability "sync": through a journal segment and back
            segment = folder / "segment.wal"
            fd = _open(segment)
            append_frame(fd, [encode_entry(encode_batch(b)) for b in groups])
            os.close(fd)
            groups = decode_batches(read_frames(segment))
        written = spool_group(folder / "spool", folder / "rejected", "churn", T0, groups)
        table = read_log_files(written.files)  # the reader works on whatever was written
        logged = table.column("request_id").to_pylist()
        rejected = [
            json.loads(line)["request_id"]
            for path in (folder / "rejected" / "churn").glob("*.jsonl")
            for line in path.read_text(encoding="ascii").splitlines()
        ]
    event("some rejected" if rejected else "none rejected")
    per_request = {rid: logged.count(rid) for rid in set(logged)}
    assert all(per_request[rid] == expected[rid] for rid in per_request)  # whole requests
    assert not set(per_request) & set(rejected)
    assert len(rejected) == len(set(rejected))
    assert set(per_request) | set(rejected) == set(expected)
    assert written.rejected == len(rejected)


def _open(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _merge(batches: list[PredictionBatch]) -> PredictionBatch:
    """One batch holding several requests (what one micro-batched predict call logs)."""
    first = batches[0]
    return PredictionBatch(
        deployment=first.deployment,
        model_version=first.model_version,
        runtime_version=first.runtime_version,
        request_ids=[r for b in batches for r in b.request_ids],
        times=[t for b in batches for t in b.times],
        endpoints=[e for b in batches for e in b.endpoints],
        latency_ms=np.concatenate([b.latency_ms for b in batches]),
        row_counts=np.concatenate([b.row_counts for b in batches]),
        block=Block.concat([b.block for b in batches]),
        predictions=np.concatenate([b.predictions for b in batches]),
        probabilities=np.concatenate([b.probabilities for b in batches]),  # type: ignore[arg-type]
    )


def test_non_finite_numbers_are_kept_in_rejected_lines_as_strict_json(tmp_path: Path) -> None:
    bad = PredictionBatch.of(_record("bad", [[math.inf], [2**64]]))
    spool_group(tmp_path / "spool", tmp_path / "rejected", "churn", T0, [bad])
    [path] = (tmp_path / "rejected" / "churn").glob("*.jsonl")
    record = json.loads(path.read_text(), parse_constant=_not_strict)
    assert record["inputs"] == [{"c0": "Infinity", "c1": 2**64}]


def _not_strict(constant: str) -> None:
    raise AssertionError(f"{constant} is not strict JSON")
