"""The sink worker: batches to write_many, drops when full, drains and closes on stop,
survives a sink that raises."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from fixtures.waiting import eventually
from loopline.serving.online._sink import SinkWorker


class Collecting:
    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[Any]] = []
        self.closed = False
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, record: Any) -> None:
        self.write_many([record])

    def write_many(self, records: list[Any]) -> None:
        with self.lock:
            if self.fail_first:
                self.fail_first = False
                raise RuntimeError("the sink is down")
            self.batches.append(list(records))

    def close(self) -> None:
        self.closed = True


def test_records_arrive_in_batches_and_stop_drains_then_closes() -> None:
    sink = Collecting()
    worker = SinkWorker(sink, on_drop=lambda: None, interval=60.0)
    worker.start()
    for n in range(100):
        worker.submit(n)  # type: ignore[arg-type]
    assert sink.batches == []  # nothing is handed over per record
    worker.stop()
    assert sink.batches == [list(range(100))]
    assert sink.closed


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    dropped: list[int] = []
    sink = Collecting()
    worker = SinkWorker(sink, on_drop=lambda: dropped.append(1), max_queued=10, interval=60.0)
    for n in range(15):  # not started: nothing drains
        worker.submit(n)  # type: ignore[arg-type]
    assert len(dropped) == 5
    worker.start()
    worker.stop()
    assert sink.batches == [list(range(10))]


def test_a_half_full_queue_is_drained_early() -> None:
    sink = Collecting()
    worker = SinkWorker(sink, on_drop=lambda: None, max_queued=100, interval=60.0)
    worker.start()
    try:
        for n in range(51):
            worker.submit(n)  # type: ignore[arg-type]
        eventually(lambda: sink.batches, timeout=5, interval=0.01, message="nothing drained")
        assert sink.batches[0][:50] == list(range(50))
    finally:
        worker.stop()


def test_a_sink_that_raises_keeps_receiving() -> None:
    sink = Collecting(fail_first=True)
    worker = SinkWorker(sink, on_drop=lambda: None, interval=0.01)
    worker.start()
    worker.submit(1)  # type: ignore[arg-type]
    eventually(
        lambda: not sink.fail_first,
        timeout=5,
        interval=0.01,
        message="the first drain never raised",
    )
    worker.submit(2)  # type: ignore[arg-type]
    worker.stop()
    assert sink.batches == [[2]]


def test_a_plain_sink_gets_one_record_per_request_of_a_batch() -> None:
    import numpy as np

    from loopline.packaging import ColumnSpec
    from loopline.predictions import Block, PredictionBatch
    from loopline.serving._inputs import InputSchema, rows_block

    schema = InputSchema([ColumnSpec("x", "double")])
    blocks = [rows_block([{"x": 1.0}, {"x": 2.0}], schema, "inputs")]
    blocks.append(rows_block([{"x": 3.0}], schema, "inputs"))
    batch = PredictionBatch(
        deployment="d",
        model_version="m/1",
        runtime_version="m/1",
        request_ids=["a", "b"],
        times=[datetime.now(UTC)] * 2,
        endpoints=["v1", "v2"],
        latency_ms=np.array([1.0, 2.0]),
        row_counts=np.array([2, 1]),
        block=Block.concat(blocks).compact(),
        predictions=np.array([0, 1, 1]),
        probabilities=np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]),
    )
    received: list[Any] = []
    worker = SinkWorker(received.append, on_drop=lambda: None, interval=60.0)
    worker.start()
    worker.submit(batch)
    worker.stop()
    assert [r.request_id for r in received] == ["a", "b"]
    assert [r.predictions.tolist() for r in received] == [[0, 1], [1]]
    assert received[1].probabilities.tolist() == [[0.3, 0.7]]
    assert [r.inputs for r in received] == [[{"x": 1.0}, {"x": 2.0}], [{"x": 3.0}]]
    assert [(r.endpoint, r.latency_ms) for r in received] == [("v1", 1.0), ("v2", 2.0)]


def test_compact_and_sliced_blocks_keep_their_values() -> None:
    from loopline.packaging import ColumnSpec
    from loopline.serving._inputs import InputSchema, rows_block

    numbers = InputSchema([ColumnSpec("x", "double"), ColumnSpec("n", "long")])
    block = rows_block([{"x": 1.5, "n": 2}, {"x": 2.5, "n": 3}], numbers, "inputs")
    compact = block.compact()
    assert compact is not block and compact.n_rows == 2
    assert compact.rows() == [{"x": 1.5, "n": 2.0}, {"x": 2.5, "n": 3.0}]
    assert compact.slice(1, 2).rows() == [{"x": 2.5, "n": 3.0}]
    mixed = InputSchema([ColumnSpec("plan", "string"), ColumnSpec("n", "long")])
    rows = rows_block([{"plan": "a", "n": 1}, {"plan": "b", "n": 2}], mixed, "inputs")
    assert rows.compact() is rows  # the strings live only in the rows
    assert rows.slice(1, 2).rows() == [{"plan": "b", "n": 2}]
