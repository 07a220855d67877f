"""`ll.monitoring.run` and `loopline monitor`: reports over a real prediction log (Parquet
files in the artifact store, indexed in SQLite or PostgreSQL), written with a real
model's outputs; references found through lineage; feedback joined; reports stored.

The report's records (index, alerts) are checked on both back-ends by the tests that
store and list reports; flows that add no store work (segments, compare, a named
reference, a Client) run on SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fixtures.monitoring import (
    Monitored,
    log_rows,
    make_frame,
    monitored_project,
    recent,
    send_feedback,
)
from loopline.errors import InvalidInput, NotFound
from loopline.project import Stores


@pytest.fixture
def monitored(project: Stores) -> Monitored:
    return monitored_project(project)


def _run(monitored: Monitored, **kwargs: object):  # type: ignore[no-untyped-def]
    from loopline.monitoring import run

    since = kwargs.pop("since", datetime.now(UTC) - timedelta(hours=1))
    return run(monitored.deployment, since=since, **kwargs)  # type: ignore[arg-type]


def test_a_shifted_window_flags_exactly_the_shifted_features(monitored: Monitored) -> None:
    shifted = make_frame(4000, seed=5, shift={"x1": 0.6, "x3": 0.8})
    labels = log_rows(monitored, shifted, start=recent(40))
    send_feedback(monitored, labels[:1500])

    report = _run(monitored)

    assert report.id is not None and report.status == "failed"
    assert "drift" in report.failed
    assert set(report.drifted) == {"x1", "x3"}
    body = report.to_dict()
    x1 = body["features"]["x1"]
    assert x1["drifted"] is True and x1["psi"] > 0.1 and 0 <= x1["ks_pvalue"] <= 1
    assert {"psi", "ks", "ks_pvalue", "wasserstein"} <= set(x1)
    region = body["features"]["region"]
    assert region["drifted"] is False and {"chi2", "js", "psi"} <= set(region)
    assert body["reference"] == "credit_train@1"  # found through the run's lineage
    assert body["versions"][monitored.version]["role"] == "stable"
    performance = body["performance"]
    assert performance["labelled_rows"] == 1500
    assert 0.3 < performance["coverage"] < 0.4
    realised = performance["realised"]["metrics"]
    assert 0.5 < realised["accuracy"] <= 1.0
    assert "accuracy" in performance["baseline"]["metrics"]
    assert performance["estimated"]["metrics"]["accuracy"] > 0.5
    assert body["outputs"]["prediction"]["drifted"] in (True, False)
    assert body["multivariate"]["reconstruction_error"] >= 0
    json.dumps(body, allow_nan=False)  # strict JSON: no NaN anywhere


def test_an_unshifted_window_passes_and_is_stored_and_listed(monitored: Monitored) -> None:
    from loopline.monitoring import list_reports, load_report
    from loopline.monitoring.report import report_html

    log_rows(monitored, make_frame(3000, seed=9), start=recent(40))
    report = _run(monitored)

    assert report.status == "passed", report.data["checks"]
    assert report.drifted == []
    performance = report.to_dict()["performance"]  # no feedback has arrived
    assert performance["labelled_rows"] == 0 and performance["realised"] is None
    assert performance["estimated"]["metrics"]["accuracy"] > 0.5  # judged before labels
    listed = list_reports(monitored.deployment)
    assert [r.id for r in listed] == [report.id]
    assert listed[0].rows == 3000 and listed[0].status == "passed"
    again = load_report(report.id)
    assert again.to_dict() == report.to_dict()
    page = report_html(report.id)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "x1" in page and "<svg" in page


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_segments_repeat_the_tables_per_value(monitored: Monitored) -> None:
    frame = make_frame(3000, seed=11, flip=0.6)
    labels = log_rows(monitored, frame, start=recent(40))
    send_feedback(monitored, labels)

    report = _run(monitored, segments=["region"])

    segments = report.versions[monitored.version]["segments"]
    assert set(segments) == {"region=north", "region=south", "region=east"}
    north = segments["region=north"]["performance"]["realised"]["metrics"]["accuracy"]
    south = segments["region=south"]["performance"]["realised"]["metrics"]["accuracy"]
    assert north < south - 0.2  # the flipped labels are in the north
    assert "performance" in report.failed


def test_a_window_with_too_few_rows_is_skipped_not_judged(monitored: Monitored) -> None:
    report = _run(monitored)
    assert report.status == "skipped" and report.passed
    assert report.data["rows"] == 0
    assert "rows" in report.data["reason"]


def test_canary_versions_get_side_by_side_sections_and_a_comparison(monitored: Monitored) -> None:
    import loopline as ll
    from loopline.serving.deployments import update_deployment

    worse = make_frame(3000, seed=3, flip=0.45)
    with ll.start_run(experiment="credit"):
        frame = ll.data.load("credit_train@1")
        from fixtures.monitoring import FEATURES, train_model

        bad_model = train_model(worse)
        bad = ll.models.log_model(bad_model, "credit", input_example=frame[FEATURES].head(5))
    update_deployment(monitored.deployment, canary=bad.ref, weight=50)
    window = make_frame(4000, seed=21)
    labels = log_rows(monitored, window.iloc[:2000], start=recent(40), prefix="s")
    labels += log_rows(
        monitored,
        window.iloc[2000:],
        start=recent(39),
        version=bad.ref,
        model=bad_model,
        prefix="c",
    )
    send_feedback(monitored, labels)

    report = _run(monitored)

    assert set(report.versions) == {monitored.version, bad.ref}
    assert report.versions[bad.ref]["role"] == "canary"
    comparison = report.data["comparison"]
    assert len(comparison) == 1 and comparison[0]["b"] == bad.ref
    assert comparison[0]["p_value"] is not None


def test_unknown_deployment_and_bad_windows_are_clear_errors(monitored: Monitored) -> None:
    from loopline.monitoring import run

    with pytest.raises(NotFound):
        run("nobody")
    with pytest.raises(InvalidInput):
        run("../etc")
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput):
        run(monitored.deployment, since=now, until=now - timedelta(hours=1))
    with pytest.raises(InvalidInput):
        run(monitored.deployment, since="yesterday")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_a_reference_by_name_replaces_the_lineage(monitored: Monitored) -> None:
    log_rows(monitored, make_frame(2000, seed=4), start=recent(40))
    report = _run(monitored, reference="credit_holdout@1")
    assert report.data["reference"] == "credit_holdout@1"
    with pytest.raises((InvalidInput, NotFound)):
        _run(monitored, reference="nothing@1")


def test_cli_run_exits_1_on_a_failed_check_and_lists_and_shows(
    monitored: Monitored, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from loopline.cli.app import run as cli

    log_rows(monitored, make_frame(3000, seed=5, shift={"x2": 0.7}), start=recent(40))
    page = tmp_path / "report.html"
    assert cli(["monitor", "run", "credit", "--since", "1h", "--json", "--report", str(page)]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["features"]["x2"]["drifted"] is True and body["status"] == "failed"
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert cli(["monitor", "ls", "credit"]) == 0
    assert body["id"] in capsys.readouterr().out
    assert cli(["monitor", "show", body["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == body["id"]
    assert cli(["monitor", "run", "credit", "--since", "1h"]) == 1
    assert "x2" in capsys.readouterr().out
    for bad in (
        ["monitor", "show", "../../x"],
        ["monitor", "run", "nobody"],
        ["monitor", "run", "credit", "--since", "soon"],
    ):
        assert cli(bad) not in (0, 1), bad
        assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_cli_compare_two_dataset_versions(
    monitored: Monitored, capsys: pytest.CaptureFixture[str]
) -> None:
    import loopline as ll
    from loopline.cli.app import run as cli

    root = monitored.stores.settings.root
    make_frame(3000, seed=8, shift={"x4": 1.0}).to_csv(
        root / "data" / "credit_train.csv", index=False
    )
    ll.data.add(root / "data" / "credit_train.csv")
    assert cli(["monitor", "compare", "credit_train@1", "credit_train@2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["drifted"] == ["x4"]
    assert body["features"]["x4"]["drifted"] is True and body["features"]["x1"]["drifted"] is False


def test_metrics_expose_the_latest_reports_scores(monitored: Monitored) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from loopline.serving.online._metrics import ServingMetrics
    from loopline.serving.online._monitor_metrics import MonitorScores

    log_rows(monitored, make_frame(3000, seed=5, shift={"x1": 0.7}), start=recent(40))
    report = _run(monitored)
    metrics = ServingMetrics()
    metrics.add_collector(MonitorScores(monitored.stores, ["credit"], ttl=0))
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    drift = {
        (s.labels["feature"], s.labels["statistic"]): s.value
        for s in families["loopline_monitor_drift"].samples
    }
    assert drift[("x1", "drifted")] == 1.0 and drift[("x2", "drifted")] == 0.0
    assert drift[("x1", "psi")] == pytest.approx(report.features["x1"]["psi"])
    failed = families["loopline_monitor_report_failed"].samples
    assert [(s.labels["deployment"], s.value) for s in failed] == [("credit", 1.0)]


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_a_client_runs_monitoring_on_its_own_project(monitored: Monitored, tmp_path: Path) -> None:
    import loopline as ll

    log_rows(monitored, make_frame(2000, seed=12, shift={"x4": 0.9}), start=recent(40))
    root = monitored.stores.settings.root
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ll.Client(project=root) as client:
        report = client.monitoring.run("credit", since=datetime.now(UTC) - timedelta(hours=1))
        assert report.drifted == ["x4"]
        assert [r.id for r in client.monitoring.list_reports("credit")] == [report.id]
        assert client.monitoring.load_report(report.id).id == report.id


def test_gc_keeps_stored_reports_and_fsck_checks_them(monitored: Monitored) -> None:
    from loopline.maintenance import fsck, gc
    from loopline.monitoring import load_report
    from loopline.monitoring.report import report_html

    log_rows(monitored, make_frame(2000, seed=13), start=recent(40))
    report = _run(monitored)
    freed = gc(grace=timedelta(0), stores=monitored.stores)  # no grace: only references keep blobs
    assert freed is not None
    assert load_report(report.id).to_dict() == report.to_dict()
    assert report_html(report.id).startswith("<!DOCTYPE html>")
    assert fsck(stores=monitored.stores).ok


def test_the_estimate_before_labels_is_calibrated_on_the_reference(monitored: Monitored) -> None:
    log_rows(monitored, make_frame(2000, seed=14), start=recent(40))
    estimated = _run(monitored).to_dict()["performance"]["estimated"]
    assert estimated["calibration"] is not None  # the reference's labels were found
    assert estimated["calibration"]["rows"] == 3000
    assert estimated["reliable"] is not None
