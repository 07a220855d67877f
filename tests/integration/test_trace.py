"""`ll.trace` and `loopline trace`: one logged prediction back to the revision that routed
it, the version that answered, its run, datasets, gates, approvals and feedback; on real
stores (SQLite and PostgreSQL), a real server on a real port, real Parquet log files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from fixtures.serving import live_server
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, NotFound
from loopline.predictions import PredictionLog, PredictionRecord, record_feedback
from loopline.predictions._request_filter import build_filter, probe
from loopline.project import Stores
from loopline.serving import deployments as dep
from loopline.serving.online._stored import StoredDeployments
from loopline.serving.online.app import create_app

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area", "worst_concavity"]
POLICY = """
rules:
  - metrics.roc_auc >= 0.90
evaluation:
  data: credit@1
  target: y
require_approval: true
"""


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@dataclass(frozen=True)
class Served:
    """What the scenario served: request ids by revision and by answering version."""

    before_canary: list[str]  # answered under revision 1 by credit-model/1
    canary: list[str]  # answered under revision 2 by the canary, credit-model/2
    champion_after: list[str]  # answered under revision 2 by credit-model/1
    two_rows: str  # a request of two rows (revision 1)
    run_ids: tuple[str, str]


def _table() -> pd.DataFrame:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame[FEATURES].assign(y=target)


def _train(c: float) -> tuple[str, str]:
    with ll.start_run(experiment="credit", params={"C": c}) as run:
        frame = ll.data.load("credit@1")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        model.fit(frame[FEATURES], frame["y"])
        ll.log_metric("train_accuracy", float(model.score(frame[FEATURES], frame["y"])))
        version = ll.models.log_model(
            model, name="credit-model", input_example=frame[FEATURES].head(5)
        )
    return version.ref, run.id


def _serve(rows: list[dict[str, Any]], count: int, *, bodies: int = 1) -> list[httpx.Response]:
    sink = PredictionLog(flush_seconds=0.2)
    app = create_app(StoredDeployments(["credit"], poll_seconds=0.2), sink=sink)
    answers = []
    with live_server(app) as url, httpx.Client(base_url=url) as client:
        for i in range(count):
            body = {"inputs": rows[i % len(rows) : i % len(rows) + bodies]}
            answer = client.post("/v1/deployments/credit/predict", json=body)
            assert answer.status_code == 200, answer.text
            answers.append(answer)
    return answers


@pytest.fixture
def served(project: Stores) -> Served:
    """credit@1 (validated), two runs reading it (credit-model/1 and /2), /1 gated,
    approved and promoted; deployment "credit" serves /1, then /2 as a 50% canary."""
    table = _table()
    csv = project.settings.root / "credit.csv"
    table.to_csv(csv, index=False)
    ll.data.add(csv, name="credit", message="the bank's export of March")
    assert ll.data.validate("credit@1", ll.data.expect("credit@1")).success
    first, first_run = _train(1.0)
    second, second_run = _train(0.05)
    policy = ll.promotion.policy_from_yaml(POLICY)
    waiting = ll.promotion.promote(first, alias="champion", reason="beats the rules", policy=policy)
    assert waiting.awaiting_approval
    ll.promotion.approve(first, reason="risk review passed", actor="risk-officer")

    rows = table[FEATURES].head(50).to_dict(orient="records")
    dep.create_deployment("credit", "credit-model@champion", reason="launch")
    early = _serve(rows, 3)
    pair = _serve(rows, 1, bodies=2)[0]
    dep.update_deployment("credit", canary=second, weight=50, reason="try the regularised one")
    late = _serve(rows, 40)
    by_version: dict[str, list[str]] = {"credit-model/1": [], "credit-model/2": []}
    for answer in late:
        by_version[answer.headers["x-model-version"]].append(answer.headers["x-request-id"])
    assert by_version["credit-model/1"] and by_version["credit-model/2"]  # 40 at 50%: both
    ids = [a.headers["x-request-id"] for a in early]
    labels = [
        {"request_id": ids[0], "label": 1},
        {"request_id": pair.headers["x-request-id"], "label": 0, "row": 1},
    ]
    record_feedback("credit", labels)
    record_feedback("credit", {"request_id": ids[0], "label": 0})  # a later label wins
    return Served(
        before_canary=ids,
        canary=by_version["credit-model/2"],
        champion_after=by_version["credit-model/1"],
        two_rows=pair.headers["x-request-id"],
        run_ids=(first_run, second_run),
    )


def test_a_request_traces_to_its_revision_version_run_data_gates_and_feedback(
    served: Served,
) -> None:
    found = ll.trace(served.before_canary[0])
    body = found.to_dict()
    assert list(body) == [
        "request_id", "row", "deployment", "prediction", "revision", "routing",
        "model", "run", "datasets", "promotion", "feedback",
    ]  # fmt: skip
    json.dumps(body, allow_nan=False)  # JSON-safe
    assert (found.request_id, found.row, found.deployment) == (served.before_canary[0], 0, "credit")
    prediction = found.prediction
    assert set(prediction["inputs"]) == set(FEATURES)
    assert prediction["inputs"]["mean_radius"] == _table()["mean_radius"].iloc[0]
    assert prediction["output"] in (0, 1) and len(prediction["probabilities"]) == 2
    assert prediction["model_version"] == "credit-model/1"
    assert prediction["endpoint"] and prediction["latency_ms"] > 0
    assert prediction["shadow"] is None and prediction["rows_in_request"] == 1
    assert datetime.fromisoformat(prediction["time"]) <= datetime.now(UTC)

    revision = found.revision
    assert revision is not None
    assert (revision["revision"], revision["action"], revision["reason"]) == (1, "create", "launch")
    assert revision["current_revision"] == 2 and revision["actor"]
    assert found.routing is not None
    assert found.routing["chosen_by"] == "model" and found.routing["share_percent"] == 100.0
    assert found.routing["ref"] == "credit-model@champion"

    model = found.model
    assert model is not None and model["ref"] == "credit-model/1"
    assert model["status"] == "production" and model["aliases"] == ["champion"]
    run = found.run
    assert run is not None and run["id"] == served.run_ids[0]
    assert run["params"] == {"C": "1.0"} and run["metrics"]["train_accuracy"] > 0.9
    assert "commit" in run and "dirty" in run
    assert [d["ref"] for d in found.datasets] == ["credit@1"]
    dataset = found.datasets[0]
    assert dataset["message"] == "the bank's export of March" and dataset["rows"] == 569
    assert [v["success"] for v in dataset["validations"]] == [True]

    promotion = found.promotion
    assert promotion is not None
    assert [g["passed"] for g in promotion["gate_checks"]] == [True]
    assert promotion["gate_checks"][0]["results"][0]["rule"] == "metrics.roc_auc >= 0.90"
    assert [(a["actor"], a["reason"]) for a in promotion["approvals"]] == [
        ("risk-officer", "risk review passed")
    ]
    actions = [e["action"] for e in promotion["events"]]
    assert actions.index("model_version.awaiting_approval") < actions.index("model_version.approve")
    assert found.feedback is not None and found.feedback["label"] == 0  # the newer label


def test_the_canary_arm_and_the_revision_in_force_at_the_time(served: Served) -> None:
    canary = ll.trace(served.canary[0])
    assert canary.prediction["model_version"] == "credit-model/2"
    assert canary.revision is not None and canary.revision["revision"] == 2
    assert canary.revision["reason"] == "try the regularised one"
    assert canary.routing is not None
    assert canary.routing["strategy"] == "canary"
    assert (canary.routing["chosen_by"], canary.routing["share_percent"]) == ("canary", 50.0)
    assert canary.model is not None and canary.model["ref"] == "credit-model/2"
    assert canary.run is not None and canary.run["id"] == served.run_ids[1]
    assert canary.run["params"] == {"C": "0.05"}
    assert canary.promotion is not None and canary.promotion["gate_checks"] == []
    assert canary.feedback is None

    champion = ll.trace(served.champion_after[0])
    assert champion.revision is not None and champion.revision["revision"] == 2
    assert champion.routing is not None
    assert (champion.routing["chosen_by"], champion.routing["share_percent"]) == ("model", 50.0)
    # the same version, answered before the canary existed: revision 1, all traffic
    earlier = ll.trace(served.before_canary[1])
    assert earlier.revision is not None and earlier.revision["revision"] == 1


def test_rows_of_a_request_and_bad_row_numbers(served: Served) -> None:
    first = ll.trace(served.two_rows)
    second = ll.trace(served.two_rows, row=1)
    assert first.prediction["rows_in_request"] == second.prediction["rows_in_request"] == 2
    assert first.prediction["inputs"] != second.prediction["inputs"]
    assert first.feedback is None and second.feedback is not None
    assert second.feedback["label"] == 0
    with pytest.raises(InvalidInput, match="has 2 rows"):
        ll.trace(served.two_rows, row=2)
    for bad in (-1, 1.0, True, "1", float("nan")):
        with pytest.raises(InvalidInput, match="row"):
            ll.trace(served.two_rows, row=bad)  # type: ignore[arg-type]


def test_the_cli_prints_panels_and_json(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["trace", served.canary[0]]) == 0
    out = capsys.readouterr().out
    for text in ("Deployment revision", "canary (50% of requests)", "credit-model/2",
                 "C", "credit@1", "Training run", "no label arrived"):  # fmt: skip
        assert text in out, text
    assert cli(["trace", served.two_rows, "--row", "1", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["row"] == 1 and body["feedback"]["label"] == 0
    assert body["routing"]["chosen_by"] == "model"
    assert cli(["trace", served.two_rows, "--row", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "has 2 rows" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "request_id", ["../x", "a\x00b", "x" * 65, "", "a b", "a/b", "é", "..", "a\nb"]
)
def test_malformed_request_ids_are_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], request_id: str
) -> None:
    with pytest.raises(InvalidInput, match="invalid request id"):
        ll.trace(request_id)
    assert cli(["trace", request_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "Traceback" not in err


def test_unknown_ids_and_bad_arguments(project: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NotFound, match="no request 0123abcd in the prediction log"):
        ll.trace("0123abcd")
    with pytest.raises(NotFound):
        ll.trace("x" * 64)  # the longest id is well-formed
    assert cli(["trace", "0123abcd"]) == NotFound.exit_code
    err = capsys.readouterr().err
    assert err.startswith("Error: no request") and "Traceback" not in err
    for bad in (None, 42, b"abc", ["a"]):
        with pytest.raises(InvalidInput):
            ll.trace(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="deployment"):
        ll.trace("abc", deployment="../x")
    with pytest.raises(NotFound, match="deployment 'nope'"):
        ll.trace("abc", deployment="nope")


T0 = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)


def _record(
    request_id: str, deployment: str, version: str, rows: int = 1, at: datetime = T0
) -> PredictionRecord:
    from loopline.packaging import ColumnSpec
    from loopline.serving._inputs import InputSchema, rows_block

    schema = InputSchema(
        [ColumnSpec("age", "double"), ColumnSpec("income", "double", nullable=True)]
    )
    inputs = [{"age": 30.0 + i, "income": None if i else 10.0} for i in range(rows)]
    return PredictionRecord(
        request_id=request_id,
        time=at,
        deployment=deployment,
        model_version=version,
        runtime_version=version,
        endpoint="predict",
        predictions=np.arange(rows, dtype=np.float64),
        probabilities=None,
        latency_ms=2.0,
        block=rows_block(inputs, schema, "inputs"),
    )


def test_missing_links_are_none_or_empty(project: Stores) -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0, 3.0], "income": [1.0, 2.0, 4.0]})
    runless = ll.models.log_model(
        LogisticRegression().fit(frame, [0, 1, 1]), name="runless", input_example=frame
    )
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("orphan-1", "gone", "ghost/7"))  # no deployment, no such version
        log(_record("runless-1", "gone", runless.ref, rows=2))
    orphan = ll.trace("orphan-1")
    assert orphan.deployment == "gone" and orphan.prediction["probabilities"] is None
    assert (orphan.revision, orphan.routing, orphan.model, orphan.run) == (None, None, None, None)
    assert (orphan.datasets, orphan.promotion, orphan.feedback) == ([], None, None)
    plain = ll.trace("runless-1", row=1)
    assert plain.model is not None and plain.model["run_id"] is None
    assert plain.run is None and plain.datasets == []
    assert plain.prediction["inputs"] == {"age": 31.0, "income": None}  # null stays null
    assert plain.promotion is not None and plain.promotion["gate_checks"] == []
    json.dumps(plain.to_dict(), allow_nan=False)


def test_one_id_in_two_deployments_needs_a_deployment(project: Stores) -> None:
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("shared", "east", "m/1"))
        log(_record("shared", "west", "m/2"))
    with pytest.raises(InvalidInput, match="2 deployments: east, west"):
        ll.trace("shared")
    assert ll.trace("shared", deployment="west").prediction["model_version"] == "m/2"
    with ll.Client(project=project.settings.root) as client:
        assert client.trace("shared", deployment="east").deployment == "east"


def test_files_indexed_without_a_filter_are_still_read(project: Stores) -> None:
    """A file indexed before filters existed (no filter row) is read for every lookup;
    a file whose filter rules the id out is not fetched at all."""
    with PredictionLog(project, flush_seconds=60) as log:
        log(_record("filtered", "east", "m/1"))
    path = project.settings.root / "old.parquet"
    log_file = project.metadata.predictions.files("east")[0]
    project.artifacts.get_file(log_file.blob_hash, path)
    table = pa.table({"request_id": ["unfiltered"]})
    import pyarrow.parquet as pq

    old = pq.read_table(path).to_pylist()[0]
    old["request_id"] = "unfiltered"
    old_table = pa.Table.from_pylist([old], schema=pq.read_schema(path))
    pq.write_table(old_table, path)
    blob = project.artifacts.put_file(path)
    assert project.metadata.predictions.add_file(
        "east",
        hour=log_file.hour,
        blob_hash=blob.hash,
        rows=1,
        first_time=log_file.first_time,
        last_time=log_file.last_time,
        size_bytes=blob.size,
    )
    assert table.num_rows == 1
    assert ll.trace("unfiltered").deployment == "east"
    assert ll.trace("filtered").deployment == "east"
    wanted = probe("filtered")
    blocks = project.metadata.predictions.files_for_request(wanted.block_hash, "east")
    assert sorted(block is None for _, block in blocks) == [False, True]


def test_the_request_filter_never_misses_and_rarely_errs() -> None:
    rng = np.random.default_rng(7)
    ids = np.frombuffer(rng.bytes(16 * 20_000).hex().encode(), dtype="S32").astype(str)
    odd = ["a" * 64, "a" * 63, "x", "A-b_9", "é", "a" * 200]
    built = build_filter(pa.array([*ids.tolist(), *odd]))

    def may_hold(request_id: str) -> bool:
        wanted = probe(request_id)
        at = wanted.block_hash % built.blocks * 64
        return wanted.found_in(built.bits[at : at + 64])

    assert all(may_hold(i) for i in [*ids[:5000].tolist(), *odd])
    others = np.frombuffer(rng.bytes(16 * 20_000).hex().encode(), dtype="S32").astype(str)
    false_positives = sum(may_hold(i) for i in others.tolist())
    assert false_positives / len(others) < 0.005
    empty = build_filter(pa.array([], pa.string()))
    assert empty.blocks == 1 and not probe("abc").found_in(empty.bits)
    assert probe("abc").found_in(None)  # no filter: the file must be read


def test_an_ab_arm_and_the_shadow_beside_it(project: Stores) -> None:
    def variant(ref: str) -> dict[str, str]:
        return {"model": ref, "ref": ref}

    config = {
        "model": variant("m/1"),
        "ab": [variant("m/1"), variant("m/2")],
        "key": "customer_id",
        "shadow": variant("m/3"),
    }
    project.metadata.deployments.create("split", config, actor="ops", reason="A/B test")
    record = _record("ab-1", "split", "m/2", at=datetime.now(UTC))
    record.shadow_version = "m/3"
    record.shadow_predictions = np.array([1.0])
    with PredictionLog(project, flush_seconds=60) as log:
        log(record)
    found = ll.trace("ab-1")
    assert found.routing is not None
    assert found.routing["strategy"] == "ab+shadow"
    assert (found.routing["chosen_by"], found.routing["arm"]) == ("ab", 1)
    assert (found.routing["key"], found.routing["share_percent"]) == ("customer_id", 50.0)
    assert found.routing["shadow"] == {"version": "m/3", "configured": "m/3", "ref": "m/3"}
    shadow = found.prediction["shadow"]
    assert shadow == {"version": "m/3", "prediction": 1.0, "probabilities": None, "error": None}
    assert found.revision is not None and found.revision["actor"] == "ops"
