"""Conformance checks of the prediction log's index and the feedback labels: a file is
indexed once however often it is delivered, a time window finds exactly the files that
overlap it, and the newest label of a request's row is the one that counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

from loopline.errors import InvalidInput
from loopline.store import MetadataStore
from loopline.store.predictions import FILTER_BLOCK_BYTES, LogSketch, RequestFilter
from loopline.testing._common import Check, raises

H0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def _index(store: MetadataStore, deployment: str, hour: datetime, digest: str) -> bool:
    """Index a file of `hour` holding records from its 10th to its 50th minute."""
    return store.predictions.add_file(
        deployment,
        hour=hour,
        blob_hash=digest,
        rows=40,
        first_time=hour + 10 * MINUTE,
        last_time=hour + 50 * MINUTE,
        size_bytes=4096,
    )


def check_prediction_log_files_round_trip(store: MetadataStore) -> None:
    predictions = store.predictions
    assert predictions.files("churn") == []
    assert _index(store, "churn", H0, "a1" * 32)
    assert not _index(store, "churn", H0, "a1" * 32)  # delivered twice: indexed once
    assert _index(store, "other", H0, "a1" * 32)  # the same bytes for another deployment
    [found] = predictions.files("churn")
    assert (found.deployment, found.hour, found.blob_hash) == ("churn", H0, "a1" * 32)
    assert (found.rows, found.size_bytes) == (40, 4096)
    assert (found.first_time, found.last_time) == (H0 + 10 * MINUTE, H0 + 50 * MINUTE)
    assert found.created_at.tzinfo is not None
    assert [f.deployment for f in predictions.files("other")] == ["other"]


def check_prediction_log_files_in_a_window(store: MetadataStore) -> None:
    predictions = store.predictions
    for number in (2, 0, 1):  # indexed out of order, found in time order
        _index(store, "churn", H0 + number * HOUR, f"{number:064x}")

    def hours(since: datetime | None = None, until: datetime | None = None) -> list[int]:
        found = predictions.files("churn", since, until)
        return [int((f.hour - H0) / HOUR) for f in found]

    assert hours() == [0, 1, 2]
    assert hours(since=H0 + 50 * MINUTE) == [0, 1, 2]  # since is inclusive
    assert hours(since=H0 + 51 * MINUTE) == [1, 2]
    assert hours(until=H0 + HOUR + 10 * MINUTE) == [0]  # until is exclusive
    assert hours(until=H0 + HOUR + 11 * MINUTE) == [0, 1]
    assert hours(H0 + HOUR, H0 + 2 * HOUR) == [1]
    assert hours(H0 + 3 * HOUR) == []
    two_hours_east = timezone(timedelta(hours=2))  # the same instants, in another zone
    assert hours(since=(H0 + 51 * MINUTE).astimezone(two_hours_east)) == [1, 2]


def check_prediction_log_file_refusals(store: MetadataStore) -> None:
    predictions = store.predictions
    raises(InvalidInput, lambda: _index(store, "churn", H0, "A1" * 32))
    raises(InvalidInput, lambda: _index(store, "churn", H0, "a1" * 31))
    raises(InvalidInput, lambda: _index(store, "churn", H0 + MINUTE, "a1" * 32))  # off the hour
    raises(InvalidInput, lambda: _index(store, "churn", H0.replace(tzinfo=None), "a1" * 32))
    raises(InvalidInput, lambda: _index(store, "../x", H0, "a1" * 32))
    raises(InvalidInput, lambda: predictions.files("a/b"))
    raises(InvalidInput, lambda: predictions.files("churn", since=H0.replace(tzinfo=None)))
    assert predictions.files("churn") == []


def check_concurrent_deliveries_index_a_file_once(store: MetadataStore) -> None:
    with ThreadPoolExecutor(6) as pool:
        indexed = list(pool.map(lambda _: _index(store, "churn", H0, "b2" * 32), range(8)))
    assert indexed.count(True) == 1, indexed
    assert len(store.predictions.files("churn")) == 1


def check_feedback_newest_label_per_row(store: MetadataStore) -> None:
    predictions = store.predictions
    t0 = H0 + 5 * MINUTE
    items = [("r1", 0, "1"), ("r1", 1, "0"), ("r2", 0, '"yes"')]
    assert predictions.add_feedback("churn", items, time=t0) == 3
    assert predictions.add_feedback("churn", [("r1", 0, "0")], time=t0 + MINUTE) == 1
    assert predictions.add_feedback("other", [("r1", 0, "7")], time=t0) == 1
    assert predictions.add_feedback("churn", []) == 0

    labels = predictions.feedback("churn")
    assert [(f.request_id, f.row, f.label_json, f.time) for f in labels] == [
        ("r1", 1, "0", t0),  # oldest first, in the order recorded
        ("r2", 0, '"yes"', t0),
        ("r1", 0, "0", t0 + MINUTE),  # superseded the label "1"
    ]
    before = predictions.feedback("churn", until=t0 + MINUTE)  # the newest in the window
    assert [(f.request_id, f.row, f.label_json) for f in before] == [
        ("r1", 0, "1"),
        ("r1", 1, "0"),
        ("r2", 0, '"yes"'),
    ]
    after = predictions.feedback("churn", since=t0 + MINUTE)
    assert [(f.request_id, f.row, f.label_json) for f in after] == [("r1", 0, "0")]
    assert [f.label_json for f in predictions.feedback("other")] == ["7"]
    assert predictions.feedback("nothing-yet") == []
    raises(
        InvalidInput, lambda: predictions.add_feedback("churn", items, time=datetime(2026, 1, 1))
    )
    raises(InvalidInput, lambda: predictions.add_feedback("a/b", items))
    raises(InvalidInput, lambda: predictions.feedback("churn", until=datetime(2026, 1, 1)))


def check_request_filters_hand_back_one_block_per_file(store: MetadataStore) -> None:
    """A file's filter is stored with its index row; a lookup gets, per file, the block
    that the hash picks (hash % blocks), or None for a file indexed without a filter."""
    predictions = store.predictions
    blocks = [bytes([number]) * FILTER_BLOCK_BYTES for number in range(3)]
    with_filter = RequestFilter(blocks=3, bits=b"".join(blocks))
    assert predictions.add_file(
        "churn",
        hour=H0,
        blob_hash="c3" * 32,
        rows=1,
        first_time=H0,
        last_time=H0,
        size_bytes=1,
        request_filter=with_filter,
    )
    _index(store, "churn", H0 + HOUR, "d4" * 32)  # indexed before filters existed
    _index(store, "other", H0, "e5" * 32)
    for block_hash in (0, 1, 2, 3, 2**31 - 1):
        found = predictions.files_for_request(block_hash, "churn")
        assert [(f.blob_hash, block) for f, block in found] == [
            ("c3" * 32, blocks[block_hash % 3]),
            ("d4" * 32, None),
        ]
    assert len(predictions.files_for_request(5)) == 3  # every deployment's files
    assert predictions.files_for_request(5, "nothing-yet") == []

    def bad_filter(blocks: int, bits: object) -> bool:
        return predictions.add_file(
            "churn",
            hour=H0,
            blob_hash="f6" * 32,
            rows=1,
            first_time=H0,
            last_time=H0,
            size_bytes=1,
            request_filter=RequestFilter(blocks=blocks, bits=bits),  # type: ignore[arg-type]
        )

    raises(InvalidInput, lambda: bad_filter(2, b"\0" * FILTER_BLOCK_BYTES))
    raises(InvalidInput, lambda: bad_filter(0, b""))
    raises(InvalidInput, lambda: bad_filter(1, "x" * FILTER_BLOCK_BYTES))
    raises(InvalidInput, lambda: predictions.files_for_request(-1))
    raises(InvalidInput, lambda: predictions.files_for_request(2**31))
    raises(InvalidInput, lambda: predictions.files_for_request(1, "a/b"))
    assert len(predictions.files("churn")) == 2  # nothing written by a refused filter


def check_feedback_of_one_request(store: MetadataStore) -> None:
    predictions = store.predictions
    t0 = H0 + 5 * MINUTE
    predictions.add_feedback("churn", [("r1", 1, "0"), ("r1", 0, "1")], time=t0)
    predictions.add_feedback("churn", [("r1", 0, "2"), ("r2", 0, "3")], time=t0 + MINUTE)
    predictions.add_feedback("other", [("r1", 0, "9")], time=t0 + 2 * MINUTE)
    found = predictions.feedback_for_request("churn", "r1")
    assert [(f.row, f.label_json, f.time) for f in found] == [(0, "2", t0 + MINUTE), (1, "0", t0)]
    assert predictions.feedback_for_request("churn", "r3") == []
    raises(InvalidInput, lambda: predictions.feedback_for_request("a/b", "r1"))


def check_log_sketches_are_indexed_with_their_file(store: MetadataStore) -> None:
    predictions = store.predictions

    def index(hour: datetime, digest: str, sketch: object) -> bool:
        return predictions.add_file(
            "churn", hour=hour, blob_hash=digest, rows=40, first_time=hour + 10 * MINUTE,
            last_time=hour + 50 * MINUTE, size_bytes=4096, sketch=sketch,  # type: ignore[arg-type]
        )  # fmt: skip

    assert predictions.sketches("churn") == {}
    assert index(H0, "a1" * 32, LogSketch("b1" * 32, 1))
    assert not index(H0, "a1" * 32, LogSketch("c1" * 32, 1))  # indexed once: the first stays
    assert index(H0 + HOUR, "a2" * 32, None)  # delivered without sketches
    assert predictions.sketches("churn") == {"a1" * 32: LogSketch("b1" * 32, 1)}
    assert predictions.sketches("churn", since=H0 + HOUR) == {}
    assert predictions.sketches("churn", until=H0 + 11 * MINUTE) == {
        "a1" * 32: LogSketch("b1" * 32, 1)
    }
    for bad in (LogSketch("B1" * 32, 1), LogSketch("b1" * 32, 0), "b1" * 32):

        def refused(bad: object = bad) -> bool:
            return index(H0 + 2 * HOUR, "a3" * 32, bad)

        raises(InvalidInput, refused)
    raises(InvalidInput, lambda: predictions.sketches("a/b"))
    assert len(predictions.files("churn")) == 2  # a refused sketch indexed nothing


CHECKS: list[Check] = [
    check_prediction_log_files_round_trip,
    check_prediction_log_files_in_a_window,
    check_prediction_log_file_refusals,
    check_concurrent_deliveries_index_a_file_once,
    check_feedback_newest_label_per_row,
    check_request_filters_hand_back_one_block_per_file,
    check_feedback_of_one_request,
    check_log_sketches_are_indexed_with_their_file,
]
