"""Stored deployments: create, update (canary, shadow, A/B), promote, rollback, history,
audit, concurrent writers and bad input, on SQLite and PostgreSQL; and the CLI.

Each test runs once more through the platform server (`through_the_server_too`,
fixtures/remote.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import loopline as ll
from fixtures.remote import through_the_server_too
from loopline.cli.app import run as cli
from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.project import Stores
from loopline.serving import deployments as dep
from loopline.serving.deployments import DeploymentSpec, Variant, undo_stack

COLUMNS = ["mean_radius", "mean_texture", "mean_area"]

pytestmark = through_the_server_too


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def models(project: Stores) -> Stores:
    """churn/1..3 (same inputs, different regularisation) and other/1 (other inputs)."""
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    for c in (1.0, 0.1, 0.01):
        model = LogisticRegression(C=c, max_iter=500).fit(frame[COLUMNS], target)
        ll.models.log_model(model, name="churn", input_example=frame[COLUMNS].head(3))
    other = LogisticRegression(max_iter=500).fit(frame[["mean_radius"]], target)
    ll.models.log_model(other, name="other", input_example=frame[["mean_radius"]].head(3))
    ll.registry.set_alias("churn/1", "champion")
    ll.registry.set_alias("churn/2", "challenger")
    return project


def test_create_pins_the_reference_to_its_version(models: Stores) -> None:
    created = dep.create_deployment("scoring", "churn@champion", reason="first")
    assert created.revision == 1
    assert created.spec.model == Variant(model="churn/1", ref="churn@champion")
    assert created.spec.strategy == "single"
    ll.registry.set_alias("churn/3", "champion")  # an alias move does not redeploy
    assert dep.get_deployment("scoring").spec.model.model == "churn/1"
    with pytest.raises(Conflict, match="already exists"):
        dep.create_deployment("scoring", "churn/2")
    assert dep.get_deployment("scoring").revision == 1


def test_canary_promote_and_rollback_walk_the_history(models: Stores) -> None:
    dep.create_deployment("scoring", "churn/1")
    canary = dep.update_deployment("scoring", canary="churn@challenger", weight=20)
    assert canary.spec.canary == Variant("churn/2", "churn@challenger")
    assert canary.spec.weight == 20.0 and canary.spec.strategy == "canary"
    assert [(d.name, role) for d, role in dep.deployments_serving("churn/2")] == [
        ("scoring", "canary")
    ]
    assert dep.deployments_serving("churn/3") == []
    promoted = dep.promote_deployment("scoring", reason="canary looked good")
    assert promoted.spec.model.model == "churn/2" and promoted.spec.canary is None
    shadowed = dep.update_deployment("scoring", shadow="churn/3")
    assert shadowed.spec.strategy == "single+shadow"
    assert shadowed.spec.versions == ("churn/2", "churn/3")
    assert [role for _, role in dep.deployments_serving("churn/3")] == ["shadow"]
    assert [role for _, role in dep.deployments_serving("churn/2")] == ["model"]

    back = dep.rollback_deployment("scoring")  # undoes the shadow
    assert back.spec.shadow is None and back.spec.model.model == "churn/2"
    back = dep.rollback_deployment("scoring")  # undoes the promotion
    assert back.spec.model.model == "churn/1" and back.spec.canary is not None
    back = dep.rollback_deployment("scoring")  # undoes the canary
    assert back.spec == DeploymentSpec(model=Variant("churn/1", "churn/1"))
    with pytest.raises(Conflict, match="no earlier configuration"):
        dep.rollback_deployment("scoring")

    history = dep.deployment_history("scoring")
    assert [r.action for r in history] == [
        "rollback",
        "rollback",
        "rollback",
        "update",
        "promote",
        "update",
        "create",
    ]
    assert history[-3].reason == "canary looked good"
    audit = models.metadata.audit.list_events(object_prefix="scoring")
    assert {e.action for e in audit} >= {
        "deployment.create",
        "deployment.update",
        "deployment.promote",
        "deployment.rollback",
    }
    promote_event = next(e for e in audit if e.action == "deployment.promote")
    assert promote_event.before is not None and promote_event.after is not None
    assert promote_event.before["canary"]["model"] == "churn/2"
    assert promote_event.after["model"]["model"] == "churn/2"


def test_an_ab_split_needs_two_versions_and_a_key(models: Stores) -> None:
    dep.create_deployment("scoring", "churn/1")
    split = dep.update_deployment("scoring", ab=["churn/1", "churn/3"], key="customer_id")
    assert split.spec.strategy == "ab" and split.spec.key == "customer_id"
    assert split.spec.role_of("churn/3") == "A/B" and split.spec.role_of("churn/2") is None
    assert [v.model for v in split.spec.variants] == ["churn/1", "churn/3"]
    with pytest.raises(InvalidInput, match="say which one wins"):
        dep.promote_deployment("scoring")
    with pytest.raises(InvalidInput, match="not one of the A/B variants"):
        dep.promote_deployment("scoring", variant="churn/2")
    won = dep.promote_deployment("scoring", variant="churn/3")
    assert won.spec.model.model == "churn/3" and not won.spec.ab and won.spec.key is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"canary": "churn/2", "weight": 150}, "between 0 and 100"),
        ({"canary": "churn/2", "weight": float("nan")}, "between 0 and 100"),
        ({"canary": "churn/2", "weight": 0}, "between 0 and 100"),
        ({"weight": 10}, "needs a canary"),
        ({"canary": "churn/1"}, "is the deployment's model already"),
        ({"ab": ["churn/2"], "key": "id"}, "at least two versions"),
        ({"ab": ["churn/2", "churn/2"], "key": "id"}, "must differ"),
        ({"ab": ["churn/1", "churn/2"]}, "needs --key"),
        ({"canary": "other/1"}, "takes different inputs"),
        ({"shadow": "other/1"}, "takes different inputs"),
        ({}, "nothing to change"),
    ],
)
def test_bad_changes_are_refused_and_nothing_is_written(
    models: Stores, change: dict[str, object], message: str
) -> None:
    dep.create_deployment("scoring", "churn/1")
    with pytest.raises(InvalidInput, match=message):
        dep.update_deployment("scoring", **change)  # type: ignore[arg-type]
    assert dep.get_deployment("scoring").revision == 1


def test_unknown_names_references_and_archived_versions(models: Stores) -> None:
    with pytest.raises(NotFound):
        dep.get_deployment("nope")
    with pytest.raises(NotFound):
        dep.update_deployment("nope", canary="churn/2")
    with pytest.raises(NotFound):
        dep.create_deployment("scoring", "churn/99")
    for bad in ("a/b", "..", "../x", "", "x" * 200, "-lead"):
        with pytest.raises(InvalidInput, match="invalid deployment name"):
            dep.create_deployment(bad, "churn/1")
    ll.registry.archive("churn/3", reason="retired")
    with pytest.raises(Conflict, match="archived"):
        dep.create_deployment("scoring", "churn/3")
    assert dep.list_deployments() == []


def test_concurrent_updates_never_overwrite_each_other(models: Stores) -> None:
    """Writers name the revision they read; the loser gets Conflict, not a lost update."""
    dep.create_deployment("scoring", "churn/1")
    store = models.metadata.deployments
    config = DeploymentSpec(model=Variant("churn/2", "churn/2")).to_dict()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def write() -> None:
        barrier.wait()
        try:
            store.update("scoring", config, action="update", actor="t", expected_revision=1)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]
    revisions = store.history("scoring")
    assert [r.revision for r in revisions] == [2, 1]
    assert store.revisions(["scoring", "missing"]) == {"scoring": 2}


def test_undo_stack_pops_what_rollbacks_undid() -> None:
    from datetime import UTC, datetime

    from loopline.store.deployments import DeploymentRevision

    def rev(n: int, action: str) -> DeploymentRevision:
        return DeploymentRevision(n, action, {"n": n}, "me", None, datetime.now(UTC))

    history = [rev(5, "update"), rev(4, "rollback"), rev(3, "update"), rev(2, "update")]
    history.append(rev(1, "create"))
    assert [r.revision for r in undo_stack(history)] == [1, 2, 5]


def test_deploy_cli_round_trip(models: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["deploy", "create", "scoring", "--model", "churn@champion", "-m", "go"]) == 0
    assert "revision 1" in capsys.readouterr().out
    assert cli(["deploy", "update", "scoring", "--canary", "churn/2", "--weight", "25"]) == 0
    assert "churn/1 + canary churn/2 at 25%" in capsys.readouterr().out
    assert cli(["deploy", "update", "scoring", "--shadow", "churn/3"]) == 0
    capsys.readouterr()
    assert cli(["deploy", "ls"]) == 0
    assert "scoring" in capsys.readouterr().out
    assert cli(["deploy", "ls", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["strategy"]) == ("scoring", "canary+shadow")
    assert cli(["deploy", "show", "scoring", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["revision"] == 3 and shown["config"]["shadow"]["model"] == "churn/3"
    assert cli(["deploy", "promote", "scoring"]) == 0
    assert "churn/2 + shadow churn/3" in capsys.readouterr().out
    assert cli(["deploy", "rollback", "scoring"]) == 0
    assert "churn/1 + canary churn/2 at 25% + shadow churn/3" in capsys.readouterr().out
    assert cli(["deploy", "history", "scoring"]) == 0
    history = capsys.readouterr().out
    for action in ("create", "update", "promote", "rollback", "go"):
        assert action in history


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["deploy", "show", "nope"], 3, "no deployment named 'nope'"),
        (["deploy", "create", "a/b", "--model", "churn/1"], 2, "invalid deployment name"),
        (["deploy", "create", "x", "--model", "churn/42"], 3, "no version 42"),
        (["deploy", "update", "scoring", "--weight", "500", "--canary", "churn/2"], 2, "0 and 100"),
        (["deploy", "update", "scoring", "--ab", "churn/2", "--key", "k"], 2, "two versions"),
        (["deploy", "rollback", "scoring"], 4, "no earlier configuration"),
        (["deploy", "promote", "scoring"], 4, "no canary"),
        (["deploy", "serve", "nope"], 3, "no deployment named 'nope'"),
        (["deploy", "serve", "scoring", "--poll", "0"], 2, "poll_seconds"),
    ],
)
def test_deploy_cli_errors_are_one_line(
    models: Stores, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    dep.create_deployment("scoring", "churn/1")
    capsys.readouterr()
    assert cli(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_deployments_reach_the_facade(models: Stores) -> None:
    created = ll.deployments.create_deployment("facade", "churn/1")
    assert ll.serving.get_deployment("facade") == created
    assert [d.name for d in ll.deployments.list_deployments()] == ["facade"]


def test_deploy_export_and_logs_commands(
    models: Stores, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dep.create_deployment("scoring", "churn/1")
    dep.update_deployment("scoring", canary="churn/2", weight=15)
    out = tmp_path / "k"
    assert cli(["deploy", "export", "scoring", "--target", "kserve", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    service = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 15
    assert cli(["deploy", "export", "scoring", "--target", "helm", "-o", str(out)]) == 2
    assert "unknown export target" in capsys.readouterr().err

    assert cli(["deploy", "logs", "scoring", "--since", "1h"]) == 0
    assert "no logged predictions" in capsys.readouterr().out
    assert cli(["deploy", "logs", "scoring", "--since", "yesterday"]) == 2
    assert "not a duration" in capsys.readouterr().err
    target = tmp_path / "empty.parquet"
    assert cli(["deploy", "logs", "scoring", "--since", "2d", "-o", str(target)]) == 0
    assert target.exists() and "wrote 0 logged predictions" in capsys.readouterr().out
    assert cli(["deploy", "logs", "scoring", "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
