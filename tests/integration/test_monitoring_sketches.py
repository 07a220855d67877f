"""The sketch path of `ll.monitoring.run`: a real PredictionLog delivers Parquet files and
their sketches (artifact store + `prediction_log_sketches`, SQLite and PostgreSQL); a
report over more rows than `exact_max_rows` merges the sketches and flags what the exact
path flags; broken or missing sketches make files read exactly, never a crash."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fixtures.monitoring import Monitored, log_rows, make_frame, monitored_project, send_feedback
from loopline.project import Stores

#: KLL k=200: rank error ~1.3 % (99 %); KS and the PSI of 10 bins move by about that
KS_TOLERANCE = 0.03
PSI_TOLERANCE = 0.03


@pytest.fixture
def monitored(project: Stores) -> Monitored:
    return monitored_project(project)


def _policy(monitored: Monitored, exact_max_rows: int) -> Any:
    from loopline.monitoring.policy import policy_for

    found = policy_for(monitored.deployment, monitored.stores.settings)
    return dataclasses.replace(found, exact_max_rows=exact_max_rows)


def _report(
    monitored: Monitored, exact_max_rows: int, since: datetime, *, store: bool = False
) -> dict[str, Any]:
    from loopline.monitoring import run

    report = run(
        monitored.deployment,
        since=since,
        policy=_policy(monitored, exact_max_rows),
        store=store,
    )
    body: dict[str, Any] = report.to_dict()
    json.dumps(body, allow_nan=False)
    return body


def _hour_start(hours_ago: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def _log_hours(monitored: Monitored, hours: int, *, shift: dict[str, float]) -> datetime:
    """Log 2,000 rows in each of `hours` whole past hours; the start of the first."""
    for index in range(hours):
        start = _hour_start(hours - index) + timedelta(minutes=5)
        frame = make_frame(2000, seed=20 + index, shift=shift)
        log_rows(monitored, frame, start=start, prefix=f"h{index}-")
    return _hour_start(hours)


def test_delivered_files_get_sketches_indexed_beside_them(monitored: Monitored) -> None:
    from loopline.predictions._sketch import SKETCH_FORMAT, read_file_sketch

    since = _log_hours(monitored, 2, shift={})
    files = monitored.stores.metadata.predictions.files(monitored.deployment, since)
    index = monitored.stores.metadata.predictions.sketches(monitored.deployment, since)
    assert len(files) == 2 and set(index) == {f.blob_hash for f in files}
    found = read_file_sketch(
        monitored.stores.artifacts.get_bytes(index[files[0].blob_hash].sketch_hash)
    )
    assert index[files[0].blob_hash].format == SKETCH_FORMAT
    assert found.rows == {monitored.version: 2000}
    columns = found.columns[monitored.version]
    assert {"input:x1", "input:region", "prediction", "probability#0", "probability#1"} <= set(
        columns
    )
    assert columns["input:x1"].kll.n == 2000 and columns["input:x1"].count == 2000
    assert sum(columns["input:region"].values.values()) == 2000  # type: ignore[union-attr]
    assert set(columns["prediction"].values) == {"0", "1"}  # type: ignore[arg-type]


def test_the_sketch_path_flags_the_same_shifted_features(monitored: Monitored) -> None:
    since = _log_hours(monitored, 3, shift={"x1": 0.6, "x3": 0.8})

    exact = _report(monitored, 10_000_000, since)
    sketch = _report(monitored, 0, since)

    assert exact["method"] == "exact" and sketch["method"] == "sketch"
    assert sketch["sketch"]["sketched_files"] == 3 and sketch["sketch"]["exact_files"] == 0
    assert sketch["rows"] == exact["rows"] == 6000
    assert set(sketch["versions"][monitored.version]["drifted"]) == {"x1", "x3"}
    assert set(sketch["versions"][monitored.version]["drifted"]) == set(
        exact["versions"][monitored.version]["drifted"]
    )
    for name in ("x1", "x2", "x3", "x4"):
        mine, truth = sketch["features"][name], exact["features"][name]
        assert abs(mine["ks"] - truth["ks"]) < KS_TOLERANCE, name
        assert abs(mine["psi"] - truth["psi"]) < PSI_TOLERANCE, name
        assert mine["null_rate"] == truth["null_rate"]
    assert sketch["features"]["region"]["chi2"] == pytest.approx(
        exact["features"]["region"]["chi2"]
    )
    assert sketch["outputs"]["prediction"]["psi"] == pytest.approx(
        exact["outputs"]["prediction"]["psi"]
    )
    assert sketch["multivariate"] is None
    assert "multivariate" in sketch["sketch"]["left_out"]


def test_a_stored_sketch_report_renders_as_html(monitored: Monitored) -> None:
    from loopline.monitoring import load_report
    from loopline.monitoring.report import report_html

    since = _log_hours(monitored, 2, shift={"x1": 0.6})
    body = _report(monitored, 0, since, store=True)

    assert load_report(body["id"]).to_dict()["method"] == "sketch"
    page = report_html(body["id"])
    assert "sketch computation" in page and "x1" in page and "<svg" in page


def test_edge_hours_are_read_exactly_and_labels_still_join(monitored: Monitored) -> None:
    since = _log_hours(monitored, 3, shift={})
    # 10 requests one second apart; the window starts at the 6th: that file straddles it
    start = since + timedelta(minutes=3)
    labels = log_rows(monitored, make_frame(500, seed=99), start=start, prefix="edge-")
    send_feedback(monitored, labels)
    window_since = start + timedelta(seconds=5)

    exact = _report(monitored, 10_000_000, window_since)
    sketch = _report(monitored, 0, window_since)

    assert sketch["method"] == "sketch"
    assert sketch["sketch"]["exact_files"] == 1 and sketch["sketch"]["sketched_files"] == 3
    assert sketch["rows"] == exact["rows"] == 6250
    assert sketch["performance"]["labelled_rows"] == exact["performance"]["labelled_rows"] == 250
    assert sketch["performance"]["realised"] == exact["performance"]["realised"]
    assert sketch["performance"]["estimated"] is None


def test_a_corrupted_sketch_blob_is_read_exactly_with_a_note(monitored: Monitored) -> None:
    since = _log_hours(monitored, 2, shift={})
    opened = monitored.stores
    index = opened.metadata.predictions.sketches(monitored.deployment, since)
    broken = next(iter(index.values())).sketch_hash
    path = _blob_path(opened, broken)
    path.chmod(0o644)
    path.write_bytes(b"LLSKETCH" + b"\xff" * 40)

    exact = _report(monitored, 10_000_000, since)
    sketch = _report(monitored, 0, since)

    assert sketch["method"] == "sketch"
    assert sketch["sketch"]["sketched_files"] == 1 and sketch["sketch"]["exact_files"] == 1
    assert any("unusable" in note for note in sketch["sketch"]["notes"])
    assert sketch["rows"] == exact["rows"] == 4000


def test_a_missing_sketch_blob_is_read_exactly(monitored: Monitored) -> None:
    since = _log_hours(monitored, 2, shift={})
    opened = monitored.stores
    for entry in opened.metadata.predictions.sketches(monitored.deployment, since).values():
        _blob_path(opened, entry.sketch_hash).unlink()

    sketch = _report(monitored, 0, since)

    assert sketch["method"] == "exact"
    assert "unusable" in sketch["method_note"]
    assert sketch["rows"] == 4000


def test_files_delivered_without_sketches_are_read_exactly(monitored: Monitored) -> None:
    from loopline.store._schema import prediction_log_sketches

    since = _log_hours(monitored, 2, shift={})
    with monitored.stores.metadata.db.write("forget sketches") as conn:
        conn.execute(prediction_log_sketches.delete())  # as files from before migration 0008

    body = _report(monitored, 0, since)

    assert body["method"] == "exact" and body["rows"] == 4000
    assert "no file of the window has sketches" in body["method_note"]


def _blob_path(opened: Stores, digest: str) -> Path:
    path = Path(opened.artifacts.uri, "blobs", digest[:2], digest[2:])
    assert path.is_file(), f"blob {digest} is not a loose file"
    return path
