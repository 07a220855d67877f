"""The prediction log and feedback, on real stores (SQLite and PostgreSQL metadata, a local
artifact folder): records buffered, spooled as Parquet, delivered, indexed and read back
by time window with DuckDB; stores that fail; labels sent back."""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fixtures.waiting import eventually
from loopline.errors import InvalidField, InvalidInput
from loopline.packaging import ColumnSpec
from loopline.predictions import (
    PredictionLog,
    parse_since,
    read_feedback,
    read_predictions,
    record_feedback,
)
from loopline.project import Stores
from loopline.serving import PredictionRecord
from loopline.serving._inputs import InputSchema, rows_block
from loopline.store import ArtifactStore, MetadataStore

NUMERIC = InputSchema([ColumnSpec("age", "long"), ColumnSpec("income", "double", nullable=True)])
MIXED = InputSchema([ColumnSpec("plan", "string"), ColumnSpec("age", "long")])
T0 = datetime(2026, 3, 1, 10, 59, 58, tzinfo=UTC)  # two seconds before an hour ends
UNREACHABLE_DB = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
PROMPTLY = 1.5  # seconds: a background flush or delivery is prompt


def _record(
    request_id: str,
    at: datetime,
    rows: list[dict[str, Any]] | None = None,
    *,
    schema: InputSchema = NUMERIC,
    deployment: str = "churn",
    shadow: bool = False,
) -> PredictionRecord:
    rows = rows if rows is not None else [{"age": 30, "income": 1000.0}]
    n = len(rows)
    predictions = np.arange(n, dtype=np.int64) % 2
    probabilities = np.column_stack([1 - predictions * 0.75, predictions * 0.75 + 0.0])
    return PredictionRecord(
        request_id=request_id,
        time=at,
        deployment=deployment,
        model_version="churn/1",
        runtime_version="churn/2",
        endpoint="predict",
        predictions=predictions,
        probabilities=probabilities,
        latency_ms=1.5,
        block=rows_block(rows, schema, "inputs"),
        shadow_version="churn/3" if shadow else None,
        shadow_predictions=1 - predictions if shadow else None,
        shadow_probabilities=None,
        shadow_error=None,
    )


def _unavailable(project: Stores, which: str) -> Stores:
    """The project's stores with its metadata or artifact store out of reach."""
    if which == "metadata":
        unreachable = MetadataStore(UNREACHABLE_DB, migrate=False)
        return Stores(project.settings, project.artifacts, metadata=unreachable)
    blocker = project.settings.root / "not-a-folder"
    blocker.write_text("a file where the artifact folder should be")
    return Stores(project.settings, ArtifactStore(str(blocker / "artifacts")), project.metadata)


def test_records_round_trip_by_window_one_file_per_hour(project: Stores) -> None:
    log = PredictionLog(project, flush_seconds=60)
    log(_record("r1", T0, [{"age": 30, "income": 1000.0}, {"age": 41, "income": None}]))
    log(_record("r2", T0 + timedelta(seconds=1), shadow=True))
    log(_record("r3", T0 + timedelta(seconds=3)))  # in the next hour
    log.close()

    files = project.metadata.predictions.files("churn")
    assert [f.rows for f in files] == [3, 1]
    assert [f.hour.hour for f in files] == [10, 11]

    table = read_predictions("churn", stores=project)
    assert table.column("request_id").to_pylist() == ["r1", "r1", "r2", "r3"]
    assert table.column("row").to_pylist() == [0, 1, 0, 0]
    first = table.to_pylist()[1]
    assert first["time"] == T0
    assert first["deployment"] == "churn"
    assert (first["model_version"], first["runtime_version"]) == ("churn/1", "churn/2")
    assert first["prediction"] == 1
    assert first["probabilities"] == [0.25, 0.75]
    assert first["inputs"] == {"age": 41.0, "income": None}  # null stays null
    assert first["shadow_version"] is None and first["shadow_prediction"] is None
    shadowed = table.to_pylist()[2]
    assert (shadowed["shadow_version"], shadowed["shadow_prediction"]) == ("churn/3", 1)
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"

    next_hour = T0.replace(minute=0, second=0) + timedelta(hours=1)
    late = read_predictions("churn", since=next_hour, stores=project)
    assert late.column("request_id").to_pylist() == ["r3"]
    early = read_predictions(
        "churn", since=T0 + timedelta(seconds=1), until=next_hour, stores=project
    )
    assert early.column("request_id").to_pylist() == ["r2"]
    assert log.pending() == []


def test_files_with_different_input_columns_read_as_one_table(project: Stores) -> None:
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("a", T0))
        log(_record("b", T0 + timedelta(hours=1), [{"plan": "pro", "age": 7}], schema=MIXED))
    assert len(project.metadata.predictions.files("churn")) == 2

    table = read_predictions("churn", stores=project)
    assert [row["inputs"] for row in table.to_pylist()] == [
        {"age": 30.0, "income": 1000.0, "plan": None},
        {"age": 7.0, "income": None, "plan": "pro"},
    ]


def test_a_full_buffer_is_flushed_by_the_call_that_fills_it(project: Stores) -> None:
    log = PredictionLog(project, flush_rows=5, flush_seconds=60)
    for i in range(4):
        log(_record(f"r{i}", T0))
    assert log.buffered_rows == 4
    log(_record("r4", T0))
    assert log.buffered_rows == 0
    eventually(
        lambda: len(read_predictions("churn", stores=project)) == 5,
        timeout=PROMPTLY,
        interval=0.02,
        message="the full buffer was not flushed",
    )
    log.close()


def test_a_quiet_buffer_is_flushed_after_flush_seconds(project: Stores) -> None:
    log = PredictionLog(project, flush_rows=1000, flush_seconds=0.2)
    log(_record("only", T0))
    eventually(
        lambda: len(read_predictions("churn", stores=project)) == 1,
        timeout=PROMPTLY,
        interval=0.02,
        message="the quiet buffer was not flushed",
    )
    assert log.buffered_rows == 0 and log.pending() == []
    log.close()


def test_close_flushes_the_buffer(project: Stores) -> None:
    log = PredictionLog(project, flush_rows=1000, flush_seconds=60)
    for i in range(3):
        log(_record(f"r{i}", T0 + timedelta(milliseconds=i)))
    log.close()
    assert read_predictions("churn", stores=project).column("request_id").to_pylist() == [
        "r0",
        "r1",
        "r2",
    ]


@pytest.mark.parametrize("which", ["metadata", "artifacts"])
def test_an_unavailable_store_keeps_the_spool_for_a_later_log(project: Stores, which: str) -> None:
    broken = _unavailable(project, which)
    log = PredictionLog(broken, flush_seconds=60)
    for i in range(3):
        log(_record(f"r{i}", T0 + timedelta(hours=i)))
    log.close()  # delivery fails: nothing may be lost
    assert len(log.pending()) == 3
    assert project.metadata.predictions.files("churn") == []

    later = PredictionLog(project, flush_seconds=60)
    later.close()
    assert later.pending() == []
    table = read_predictions("churn", stores=project)
    assert table.column("request_id").to_pylist() == ["r0", "r1", "r2"]


def test_a_new_log_delivers_the_spool_without_being_asked(project: Stores) -> None:
    broken = _unavailable(project, "metadata")
    with PredictionLog(broken, flush_seconds=60) as log:
        log(_record("left", T0))
    later = PredictionLog(project, flush_seconds=60)
    eventually(
        lambda: later.pending() == [],
        timeout=PROMPTLY,
        interval=0.02,
        message="the spool was not delivered",
    )
    assert len(read_predictions("churn", stores=project)) == 1
    later.close()


def test_a_file_delivered_twice_is_indexed_once(project: Stores, tmp_path: Path) -> None:
    broken = _unavailable(project, "metadata")
    with PredictionLog(broken, flush_seconds=60) as log:
        log(_record("once", T0))
    [spooled] = log.pending()
    copy = tmp_path / "copy.parquet"
    shutil.copy(spooled, copy)

    PredictionLog(project).close()
    shutil.copy(copy, spooled)  # as if killed after indexing, before removing the file
    PredictionLog(project).close()

    assert len(project.metadata.predictions.files("churn")) == 1
    assert read_predictions("churn", stores=project).column("request_id").to_pylist() == ["once"]


def test_an_unreadable_spool_file_is_set_aside(project: Stores) -> None:
    log = PredictionLog(project, flush_seconds=60)
    junk = log.spool / "churn" / "20260301T10Z-junk.parquet"
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"not parquet")
    log(_record("good", T0))
    log.close()
    assert log.pending() == []
    assert (log.spool.parent / "rejected" / "churn" / junk.name).is_file()
    assert len(read_predictions("churn", stores=project)) == 1


def test_spool_files_are_parquet_with_the_documented_columns(project: Stores) -> None:
    broken = _unavailable(project, "metadata")
    with PredictionLog(broken, flush_seconds=60) as log:
        log(_record("r", T0))
    [spooled] = log.pending()
    schema = pq.read_schema(spooled)
    assert schema.names == [
        "request_id",
        "row",
        "time",
        "deployment",
        "model_version",
        "runtime_version",
        "endpoint",
        "latency_ms",
        "prediction",
        "probabilities",
        "shadow_version",
        "shadow_prediction",
        "shadow_probabilities",
        "shadow_error",
        "dropped_fields",
        "inputs",
    ]
    assert str(schema.field("row").type) == "int32"
    probabilities = schema.field("probabilities").type
    assert pa.types.is_list(probabilities) and probabilities.value_type == pa.float64()


def test_an_unknown_deployment_reads_as_an_empty_table(project: Stores) -> None:
    table = read_predictions("nobody-here", stores=project)
    assert table.num_rows == 0
    assert table.column_names[:3] == ["request_id", "row", "time"]
    with pytest.raises(InvalidInput):
        read_predictions("not/a/name", stores=project)
    with pytest.raises(InvalidInput, match="before it starts"):
        read_predictions("churn", since=T0, until=T0 - timedelta(seconds=1), stores=project)


# -- feedback -----------------------------------------------------------------------------


def test_feedback_round_trip_newest_label_wins(project: Stores) -> None:
    assert record_feedback("churn", {"request_id": "r1", "label": 1}, stores=project) == 1
    batch = [
        {"request_id": "r1", "label": 0},  # corrects the first label
        {"request_id": "r2", "label": 1, "row": 3},
        {"request_id": "r2", "label": 1},
    ]
    assert record_feedback("churn", batch, stores=project) == 3
    record_feedback("other", {"request_id": "r1", "label": 5}, stores=project)

    table = read_feedback("churn", stores=project)
    assert sorted(table.select(["request_id", "row", "label"]).to_pylist(), key=str) == sorted(
        [
            {"request_id": "r1", "row": 0, "label": 0},
            {"request_id": "r2", "row": 3, "label": 1},
            {"request_id": "r2", "row": 0, "label": 1},
        ],
        key=str,
    )
    assert str(table.schema.field("label").type) == "int64"
    later = read_feedback("churn", since=datetime.now(UTC) + timedelta(seconds=5), stores=project)
    assert later.num_rows == 0


def test_feedback_labels_are_typed_and_mixed_types_become_text(project: Stores) -> None:
    record_feedback("texts", [{"request_id": "a", "label": "yes"}], stores=project)
    assert read_feedback("texts", stores=project).column("label").to_pylist() == ["yes"]
    record_feedback(
        "mixed",
        [{"request_id": "a", "label": "yes"}, {"request_id": "b", "label": 2.5}],
        stores=project,
    )
    labels = read_feedback("mixed", stores=project).column("label").to_pylist()
    assert sorted(labels) == ["2.5", "yes"]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"request_id": "r1", "label": math.nan}, "label"),
        ({"request_id": "r1", "label": math.inf}, "label"),
        ({"request_id": "r1", "label": None}, "label"),
        ({"request_id": "r1"}, "label"),
        ({"request_id": "r1", "label": {"a": 1}}, "label"),
        ({"request_id": "r1", "label": "x" * 1001}, "label"),
        ({"label": 1}, "request_id"),
        ({"request_id": "a/b", "label": 1}, "request_id"),
        ({"request_id": "", "label": 1}, "request_id"),
        ({"request_id": "x" * 65, "label": 1}, "request_id"),
        ({"request_id": 7, "label": 1}, "request_id"),
        ({"request_id": "r1", "label": 1, "row": -1}, "row"),
        ({"request_id": "r1", "label": 1, "row": "0"}, "row"),
        ({"request_id": "r1", "label": 1, "row": True}, "row"),
        ({"request_id": "r1", "label": 1, "extra": 1}, "extra"),
    ],
)
def test_bad_feedback_names_the_field_and_the_item(
    item: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # items are checked before any store is opened
    good = {"request_id": "ok", "label": 1}
    with pytest.raises(InvalidField) as raised:
        record_feedback("churn", [good, item])
    assert (raised.value.field, raised.value.row) == (field, 1)
    assert "item 1" in raised.value.message


@pytest.mark.parametrize(
    "items",
    [[], [{"request_id": "r", "label": 1}] * 10_001, ["r1"], "r1", None],
)
def test_empty_oversized_or_malformed_batches_are_refused(
    items: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput):
        record_feedback("churn", items)


def test_a_batch_with_one_bad_item_stores_nothing(project: Stores) -> None:
    batch = [{"request_id": "ok", "label": 1}, {"request_id": "bad", "label": math.nan}]
    with pytest.raises(InvalidField):
        record_feedback("churn", batch, stores=project)
    assert read_feedback("churn", stores=project).num_rows == 0


# -- time windows -------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2d", NOW - timedelta(days=2)),
        ("90s", NOW - timedelta(seconds=90)),
        (" 1.5H ", NOW - timedelta(minutes=90)),
        ("2026-02-28T08:30:00Z", datetime(2026, 2, 28, 8, 30, tzinfo=UTC)),
        ("2026-02-28T10:30:00+02:00", datetime(2026, 2, 28, 8, 30, tzinfo=UTC)),
        ("2026-02-28 08:30", datetime(2026, 2, 28, 8, 30, tzinfo=UTC)),  # naive: UTC
    ],
)
def test_parse_since_reads_durations_and_timestamps(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1y", "-1h", "h", "10", "1h30m"])
def test_parse_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_since(text, now=NOW)


def test_probabilities_of_different_widths_share_one_file() -> None:
    """A canary with three classes beside a main model with two: both rows are logged."""
    from dataclasses import replace

    from loopline.predictions import PredictionBatch
    from loopline.predictions._parquet import records_table

    two = replace(_record("a", T0), probabilities=np.array([[0.3, 0.7]]))
    three = replace(_record("b", T0), probabilities=np.array([[0.1, 0.2, 0.7]]))
    table = records_table([PredictionBatch.of(two), PredictionBatch.of(three)])
    assert table.column("probabilities").to_pylist() == [[0.3, 0.7], [0.1, 0.2, 0.7]]
