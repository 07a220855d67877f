"""Evaluation, gates, promotion, approvals, model cards and ONNX export, end to end on
real models and versioned data, on SQLite and PostgreSQL, and once more through the
platform server (`through_the_server_too`, fixtures/remote.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import loopline as ll
from fixtures.remote import through_the_server_too
from loopline.cli.app import run as loopline_cli
from loopline.errors import InvalidInput, ParityFailed, PromotionRefused
from loopline.project import Stores
from loopline.promotion import policy_from_yaml
from loopline.store import ModelStatus

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area", "worst_concavity"]
POLICY = """
rules:
  - metrics.roc_auc >= 0.90
  - slices.min.roc_auc >= 0.80
  - fairness.sex.demographic_parity_diff <= 0.2
  - compare.champion.roc_auc >= -0.005
  - latency.p99_ms <= 1000
  - robustness.flip_rate <= 0.2
evaluation:
  data: credit@1
  target: y
  slices: [segment, "mean_radius > 15"]
  sensitive: [sex]
"""


pytestmark = through_the_server_too


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(3)
    return frame[FEATURES].assign(
        segment=rng.choice(["gold", "silver"], len(frame)),
        sex=rng.choice(["f", "m"], len(frame)),
        y=target,
    )


def _train(project: Stores, table: pd.DataFrame, model: object, columns: list[str]) -> str:
    csv = project.settings.root / "credit.csv"
    if not csv.exists():
        table.to_csv(csv, index=False)
        ll.data.add(csv, name="credit")
    with ll.start_run(experiment="churn"):
        frame = ll.data.load("credit@1")
        model.fit(frame[columns], frame["y"])  # type: ignore[attr-defined]
        return ll.models.log_model(model, name="churn", input_example=frame[columns].head(5)).ref


def _good(project: Stores, table: pd.DataFrame) -> str:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return _train(project, table, model, FEATURES)


def _bad(project: Stores, table: pd.DataFrame) -> str:
    return _train(project, table, DecisionTreeClassifier(max_depth=1), ["mean_smoothness"])


def test_evaluate_stores_metrics_slices_fairness_and_an_html_report(
    project: Stores, table: pd.DataFrame
) -> None:
    ref = _good(project, table)
    result = ll.evaluate(
        ref, "credit@1", target="y", slices=["segment", "mean_radius > 15"], sensitive=["sex"]
    )
    report = result.report
    assert report["task"] == "binary" and report["rows"] == len(table)
    assert result.metrics["roc_auc"] > 0.95
    assert set(result.slices) == {"segment=gold", "segment=silver", "mean_radius > 15"}
    assert report["slices_min"]["roc_auc"] <= result.metrics["roc_auc"] + 0.05
    assert "demographic_parity_diff" in report["fairness"]["sex"]
    assert report["calibration"]["ece"] >= 0
    assert report["latency"]["p50_ms"] > 0 and report["size"]["bytes"] > 0
    assert "<svg" in result.html()
    stored = ll.evaluation.list_evaluations(ref)
    assert [r.id for r in stored] == [result.record.id]
    assert stored[0].data_ref == "credit@1" and stored[0].metrics == result.metrics
    with pytest.raises(InvalidInput, match="nope"):
        ll.evaluate(ref, "credit@1", target="nope")
    with pytest.raises(InvalidInput):
        ll.evaluate(ref, "credit@1", target="y", slices=["mean_radius >> 3"])


def test_gates_promote_a_good_model_and_refuse_a_worse_one(
    project: Stores, table: pd.DataFrame
) -> None:
    policy = policy_from_yaml(POLICY)
    good = _good(project, table)
    first = ll.promotion.promote(
        good, to="production", alias="champion", reason="first", policy=policy
    )
    assert first.gates is not None and first.gates.passed
    assert first.version.status == ModelStatus.PRODUCTION
    compare = next(r for r in first.gates.results if r.rule.startswith("compare."))
    assert compare.passed and "nothing to compare" in compare.reason
    bad = _bad(project, table)
    with pytest.raises(PromotionRefused) as refused:
        ll.promotion.promote(bad, to="production", alias="champion", policy=policy)
    failed = " ".join(refused.value.failures)
    assert "metrics.roc_auc >= 0.90" in failed and "compare.champion.roc_auc" in failed
    assert ll.registry.get_model("churn").aliases == {"champion": 1}
    assert ll.registry.resolve(bad).status == ModelStatus.CANDIDATE
    attempts = ll.registry.audit_log(object_id=bad, action="model_version.promotion_refused")
    assert len(attempts) == 1 and attempts[0].after["alias"] == "champion"  # type: ignore[index]
    with pytest.raises(InvalidInput, match="reason"):
        ll.promotion.promote(bad, to="staging", force=True, policy=policy)
    forced = ll.promotion.promote(
        bad, to="staging", force=True, reason="shadow test only", policy=policy
    )
    assert forced.forced and forced.version.status == ModelStatus.STAGING
    events = ll.registry.audit_log(object_id=bad, action="model_version.force")
    assert events and events[0].reason == "shadow test only"
    assert any("metrics.roc_auc" in rule for rule in events[0].after["failed_rules"])  # type: ignore[index]
    checks = project.metadata.reviews.list_gate_checks(ll.registry.resolve(bad).id)
    assert checks and not checks[0].passed


def test_a_champion_compared_with_itself_and_reused_evaluations(
    project: Stores, table: pd.DataFrame
) -> None:
    policy = policy_from_yaml(POLICY)
    good = _good(project, table)
    ll.promotion.promote(good, alias="champion", reason="first", policy=policy)
    second = _good(project, table)  # the same recipe: within 0.005 of the champion
    report = ll.promotion.check_gates(second, policy=policy)
    compare = next(r for r in report.results if r.rule.startswith("compare."))
    assert compare.passed and compare.actual is not None and abs(compare.actual) < 1e-9
    # the champion's evaluation on credit@1 was stored once and reused, not redone
    champion_evaluations = ll.evaluation.list_evaluations(good)
    ll.promotion.check_gates(second, policy=policy)
    assert len(ll.evaluation.list_evaluations(good)) == len(champion_evaluations) == 1


def test_approval_keeps_a_version_in_staging_until_approved(
    project: Stores, table: pd.DataFrame
) -> None:
    policy = policy_from_yaml(POLICY + "require_approval: true\n")
    good = _good(project, table)
    waiting = ll.promotion.promote(good, alias="champion", reason="ready", policy=policy)
    assert waiting.awaiting_approval and waiting.version.status == ModelStatus.STAGING
    assert ll.registry.get_model("churn").aliases == {}
    with pytest.raises(InvalidInput):
        ll.promotion.approve(good, reason="  ")
    done = ll.promotion.approve(good, reason="risk review passed", actor="risk-officer")
    assert done is not None and done.version.status == ModelStatus.PRODUCTION
    assert ll.registry.get_model("churn").aliases == {"champion": 1}
    actions = [e.action for e in ll.registry.audit_log(model="churn")]
    assert "model_version.approve" in actions and "model_version.awaiting_approval" in actions


def test_model_card_is_regenerated_on_promotion_in_three_formats(
    project: Stores, table: pd.DataFrame
) -> None:
    good = _good(project, table)
    ll.registry.describe_model(
        "churn",
        description="Predicts churn <b>bold</b>",
        tags={"intended_use": "retention offers", "risk_category": "limited"},
    )
    assert ll.cards.stored_card(good) is None
    ll.promotion.promote(good, alias="champion", reason="first", policy=policy_from_yaml(POLICY))
    stored = ll.cards.stored_card("churn@champion")
    assert stored is not None
    assert stored["model_details"]["name"] == "churn"
    assert stored["loopline"]["gates_passed"] is True
    assert stored["loopline"]["lineage"]["datasets"][0]["ref"] == "credit@1"
    assert stored["considerations"]["use_cases"] == [{"description": "retention offers"}]
    assert stored["loopline"]["risk_category"] == "limited"
    markdown = ll.cards.render_card("churn@champion")
    html = ll.cards.render_card("churn@champion", "html")
    body = json.loads(ll.cards.render_card("churn@champion", "json"))
    assert "roc_auc" in markdown and "credit@1" in markdown
    assert "<b>bold</b>" not in html and "&lt;b&gt;" in html
    assert body["quantitative_analysis"]["performance_metrics"]
    with pytest.raises(InvalidInput):
        ll.cards.render_card("churn@champion", "pdf")  # type: ignore[arg-type]


def test_export_to_onnx_registers_a_parity_checked_version(
    project: Stores, table: pd.DataFrame
) -> None:
    good = _good(project, table)
    result = ll.models.export(good)
    assert result.parity.passed and result.parity.max_abs_diff_proba is not None
    assert result.parity.max_abs_diff_proba < 1e-4
    onnx = result.version
    assert (onnx.ref, onnx.flavor) == ("churn/2", "onnx")
    assert onnx.source_version_id == ll.registry.resolve(good).id
    assert onnx.extra["export"]["parity"]["passed"] is True
    frame = table[FEATURES].head(50)
    original, exported = ll.models.load(good), ll.models.load(onnx.ref)
    assert (original.predict(frame) == exported.predict(frame)).all()
    np.testing.assert_allclose(
        original.predict_proba(frame), exported.predict_proba(frame), atol=1e-5
    )
    assert ll.models.model_lineage(onnx.ref)["source"]["ref"] == good
    with pytest.raises(InvalidInput):
        ll.models.export(good, format="tflite")
    with pytest.raises(InvalidInput):
        ll.models.export(good, quantize="static")
    with pytest.raises(InvalidInput):
        ll.models.export(good, tolerance=float("nan"))


def test_export_refuses_when_parity_fails(project: Stores, table: pd.DataFrame) -> None:
    good = _good(project, table)
    # ONNX computes in float32: ~1e-7 away from scikit-learn's float64 probabilities
    with pytest.raises(ParityFailed, match="tolerance 0"):
        ll.models.export(good, data=table, tolerance=0.0)
    assert [v.version for v in ll.registry.list_versions("churn")] == [1]


def test_bad_policies_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="position"):
        policy_from_yaml("rules:\n  - metrics.roc_auc >= \n")
    with pytest.raises(InvalidInput, match="unknown key"):
        policy_from_yaml("rules: []\nrequire_aproval: true\n")
    with pytest.raises(InvalidInput):
        policy_from_yaml("rules: metrics.roc_auc >= 0.9\n")
    bad = tmp_path / "gates.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(InvalidInput, match=r"gates\.yaml"):
        ll.promotion.load_policy(bad)


def _wine(project: Stores) -> str:
    """A second model, on data with other columns, registered as `wine`."""
    frame = load_wine(as_frame=True).frame
    frame["y"] = (frame.pop("target") == 0).astype(int)
    frame.to_csv(project.settings.root / "wine.csv", index=False)
    ll.data.add(project.settings.root / "wine.csv")  # dataset `wine`
    columns = ["alcohol", "malic_acid", "proline"]
    with ll.start_run(experiment="wine"):
        data = ll.data.load("wine@1")
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(data[columns], data["y"])
        return ll.models.log_model(model, name="wine", input_example=data[columns].head(5)).ref


PER_MODEL_GATES = """
[gates]
rules = ["metrics.roc_auc >= 0.90"]
[gates.evaluation]
data = "credit@1"
target = "y"

[gates.wine]
rules = ["metrics.roc_auc >= 0.95", "metrics.accuracy >= 0.5"]
[gates.wine.evaluation]
data = "wine@1"
target = "y"

[gates.not-registered-yet]
rules = ["metrics.roc_auc >= 0.999"]
"""


def _gates_toml(project: Stores, text: str) -> None:
    with (project.settings.root / "loopline.toml").open("a", encoding="utf-8") as fh:
        fh.write(text)
    ll.configure(project=project.settings.root)


def test_each_model_is_gated_by_its_own_table_on_its_own_data(
    project: Stores, table: pd.DataFrame
) -> None:
    churn, wine = _good(project, table), _wine(project)
    _gates_toml(project, PER_MODEL_GATES)
    report = ll.promotion.check_gates(wine)
    assert report.passed, [r.reason for r in report.failures]
    assert [r.rule for r in report.results] == [
        "metrics.roc_auc >= 0.95",
        "metrics.accuracy >= 0.5",
    ]
    assert report.evaluation is not None and report.evaluation.record.data_ref == "wine@1"
    assert report.check is not None and report.check.policy["source"].endswith("[gates.wine]")
    report = ll.promotion.check_gates(churn)  # no table of its own: [gates]
    assert [r.rule for r in report.results] == ["metrics.roc_auc >= 0.90"]
    assert report.evaluation is not None and report.evaluation.record.data_ref == "credit@1"
    promoted = ll.promotion.promote(wine, to="staging", reason="own gates")
    assert promoted.gates is not None and promoted.gates.passed


def test_a_gate_on_another_models_data_names_the_dataset_and_the_model(
    project: Stores, table: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    _good(project, table)
    wine = _wine(project)
    _gates_toml(
        project,
        '[gates]\nrules = ["metrics.roc_auc >= 0.9"]\n'
        '[gates.evaluation]\ndata = "credit@1"\ntarget = "y"\n',
    )
    message = "gate dataset 'credit@1' has no column 'alcohol' that model 'wine' needs"
    with pytest.raises(InvalidInput, match=message) as info:
        ll.promotion.check_gates(wine)
    assert "[gates.MODEL]" in (info.value.hint or "")
    with pytest.raises(InvalidInput, match=message):
        ll.promotion.promote(wine, to="staging")
    assert ll.registry.resolve(wine).status == ModelStatus.CANDIDATE
    assert loopline_cli(["gate", wine]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {message}") and "Traceback" not in err
    # the target is checked before anything runs, and named too
    with pytest.raises(InvalidInput, match="gate dataset 'wine@1' has no target column 'label'"):
        ll.promotion.check_gates(wine, data="wine@1", target="label")
    # data without a profile: the evaluation's own error, with the dataset in front
    (project.settings.root / "blob").mkdir()
    (project.settings.root / "blob" / "x.bin").write_bytes(b"\x00\x01")
    ll.data.add(project.settings.root / "blob")
    with pytest.raises(InvalidInput, match="gate dataset 'blob@1', model 'wine': "):
        ll.promotion.check_gates(wine, data="blob@1", target="y")


def test_a_bad_model_table_fails_every_gate_check_with_the_table_named(
    project: Stores, table: pd.DataFrame
) -> None:
    churn = _good(project, table)
    _gates_toml(project, '[gates."bad name"]\nrules = []\n')
    with pytest.raises(InvalidInput, match="'bad name' is not a model name"):
        ll.promotion.check_gates(churn)
    with pytest.raises(InvalidInput, match="'bad name' is not a model name"):
        ll.promotion.promote(churn, to="staging")


def test_robustness_perturbs_only_the_model_inputs_and_the_card_counts_them(
    project: Stores, table: pd.DataFrame
) -> None:
    good = _good(project, table)
    with_id = table.assign(id=range(len(table)), score=np.linspace(0, 1, len(table)))
    with_id.to_csv(project.settings.root / "scored.csv", index=False)
    ll.data.add(project.settings.root / "scored.csv")
    result = ll.evaluate(good, "scored@1", target="y", slices=["segment"], sensitive=["sex"])
    assert result.report["robustness"]["features"] == FEATURES  # not id, not score
    ll.promotion.promote(good, to="staging", reason="card", policy=policy_from_yaml("rules: []"))
    html = ll.cards.render_card(good, "html")
    row = re.search(r"robustness\.features</td>\s*<td class=\"list\"><details><summary>(\d+)", html)
    assert row is not None and int(row[1]) == len(FEATURES)
    assert "['" not in html and "[&#39;" not in html
