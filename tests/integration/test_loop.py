"""The retrain loop on real stores: production rows with feedback become a new dataset
version, a user's training function runs in a tracked run, the candidate is gated on a
fresh hold-out and canaried; the canary is then promoted or rolled back on significance.
Failures (a raising training function, a gate refusal, too few labels) leave the
deployment as it was.

The loop's records are audit events and dataset/model versions, which the promote,
failure and rollback tests check on both back-ends; the other flows run on SQLite."""

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
from loopline.project import Stores

TRAINER = """
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

FEATURES = ["x1", "x2", "x3", "x4", "region"]


def fit(data, target, params):
    prepare = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough"
    )
    classifier = LogisticRegression(C=params.get("C", 1.0), max_iter=500)
    model = Pipeline([("prepare", prepare), ("model", classifier)])
    return model.fit(data[FEATURES], data[target])


def fit_backwards(data, target, params):
    return fit(data.assign(**{target: 1 - data[target]}), target, params)


def fit_and_fail(data, target, params):
    raise RuntimeError("the training data broke the solver")
"""


COMMAND_TRAINER = """
import os

import loopline as ll
from trainer import FEATURES, fit

with ll.start_run(experiment="credit-command"):
    data = ll.data.load(os.environ["LOOPLINE_TRAIN_DATA"])
    model = fit(data, os.environ["LOOPLINE_TARGET"], {})
    name = os.environ["LOOPLINE_MODEL_NAME"]
    ll.models.log_model(model, name, input_example=data[FEATURES].head(5))
"""


def _policy(root: Path, train: str, *, judge_min_rows: int = 200) -> Path:
    (root / "trainer.py").write_text(TRAINER)
    path = root / "loop.yaml"
    path.write_text(
        f"""deployment: credit
window: 2h
min_rows: 100
actions:
  - when: performance
    do: retrain
    train: "{train}"
    target: y
    params: {{C: 0.5}}
    canary_weight: 0.3
    judge_min_rows: {judge_min_rows}
    judge_after: 1h
"""
    )
    return path


@pytest.fixture
def monitored(project: Stores) -> Monitored:
    found = monitored_project(project)
    labels = log_rows(found, make_frame(2000, seed=31, shift={"x3": 0.5}), start=recent(50))
    send_feedback(found, labels)
    return found


def _deployment(name: str = "credit"):  # type: ignore[no-untyped-def]
    from loopline.serving.deployments import get_deployment

    return get_deployment(name)


def test_a_loop_builds_data_trains_gates_and_canaries_then_promotes(monitored: Monitored) -> None:
    from loopline.loop.canary import judge_canaries, show_loop
    from loopline.loop.retrain import run_loop
    from loopline.models import model_lineage
    from loopline.monitoring.policy import load_policy

    root = monitored.stores.settings.root
    policy = load_policy(_policy(root, "trainer:fit"), project_root=root)
    loop = run_loop("credit", policy=policy)

    assert loop.status == "canary", loop.to_dict()
    assert [s.action for s in loop.steps] == [
        "loop.started",
        "loop.dataset",
        "loop.trained",
        "loop.gates",
        "loop.canary",
    ]
    data = loop.detail("loop.dataset")
    assert data["training"] == "credit-train@1" and data["holdout"] == "credit-holdout@1"
    assert data["production_rows"] + data["holdout_rows"] == 2000
    candidate = loop.detail("loop.trained")["candidate"]
    assert candidate == "credit/2"
    lineage = model_lineage(candidate)
    assert [d["ref"] for d in lineage["run"]["datasets"]] == ["credit-train@1"]
    assert lineage["run"]["params"] == {"C": "0.5"} or lineage["run"]["params"] == {"C": 0.5}
    spec = _deployment().spec
    assert spec.model.model == monitored.version and spec.canary.model == candidate
    assert spec.weight == pytest.approx(30)

    # the canary answers its share with the new model; labels come back
    from loopline.models import load

    new_model = load(candidate)
    window = make_frame(1200, seed=41, shift={"x3": 0.5})
    started = datetime.now(UTC)
    labels = log_rows(monitored, window.iloc[:600], start=started, prefix="s")
    labels += log_rows(
        monitored, window.iloc[600:], start=started, version=candidate, model=new_model, prefix="c"
    )
    send_feedback(monitored, labels)

    ended = judge_canaries(policy, now=started + timedelta(minutes=5))
    assert [e.id for e in ended] == [loop.id]
    again = show_loop(loop.id)
    assert again.status == "promoted", again.to_dict()
    assert _deployment().spec.model.model == candidate and _deployment().spec.canary is None
    from loopline.registry import resolve

    assert resolve("credit@champion").ref == candidate


def test_a_failing_training_function_leaves_the_deployment_as_it_was(monitored: Monitored) -> None:
    from loopline.loop.retrain import run_loop
    from loopline.monitoring.policy import load_policy

    root = monitored.stores.settings.root
    before = _deployment().revision
    loop = run_loop(
        "credit", policy=load_policy(_policy(root, "trainer:fit_and_fail"), project_root=root)
    )
    assert loop.status == "failed"
    assert "broke the solver" in loop.steps[-1].detail["error"]
    assert _deployment().revision == before


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_a_candidate_refused_by_the_gates_is_not_deployed(project: Stores) -> None:
    from loopline.loop.retrain import run_loop
    from loopline.monitoring.policy import load_policy
    from loopline.project import configure

    monitored = monitored_project(project)
    root = project.settings.root
    with (root / "loopline.toml").open("a") as fh:
        fh.write('\n[gates]\nrules = ["metrics.accuracy >= 0.8"]\n')
    opened = configure(project=root)
    monitored.stores = opened
    labels = log_rows(monitored, make_frame(1500, seed=32), start=recent(50))
    send_feedback(monitored, labels)
    before = _deployment().revision

    loop = run_loop(
        "credit", policy=load_policy(_policy(root, "trainer:fit_backwards"), project_root=root)
    )

    assert loop.status == "refused", loop.to_dict()
    assert "metrics.accuracy" in json.dumps(loop.detail("loop.refused"))
    assert _deployment().revision == before and _deployment().spec.canary is None


def test_a_worse_canary_is_rolled_back(monitored: Monitored) -> None:
    from loopline.loop.canary import judge_canaries, show_loop
    from loopline.loop.retrain import run_loop
    from loopline.models import load
    from loopline.monitoring.policy import load_policy

    root = monitored.stores.settings.root
    policy = load_policy(
        _policy(root, "trainer:fit_backwards", judge_min_rows=100), project_root=root
    )
    loop = run_loop("credit", policy=policy)
    assert loop.status == "canary"
    candidate = loop.detail("loop.trained")["candidate"]
    started = datetime.now(UTC)
    window = make_frame(800, seed=43)
    labels = log_rows(monitored, window.iloc[:400], start=started, prefix="s")
    labels += log_rows(
        monitored,
        window.iloc[400:],
        start=started,
        version=candidate,
        model=load(candidate),
        prefix="c",
    )
    send_feedback(monitored, labels)

    judge_canaries(policy, now=started + timedelta(minutes=5))

    ended = show_loop(loop.id)
    assert ended.status == "rolled_back", ended.to_dict()
    assert ended.detail("loop.canary_rolled_back")["comparison"]["better"] == "a"
    spec = _deployment().spec
    assert spec.canary is None and spec.model.model == monitored.version


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_loop_cli_runs_shows_and_lists(
    monitored: Monitored, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.app import run as cli

    root = monitored.stores.settings.root
    path = _policy(root, "trainer:fit")
    assert cli(["loop", "run", "credit", "--policy", str(path), "--json"]) == 0
    loop = json.loads(capsys.readouterr().out)
    assert loop["status"] == "canary"
    assert cli(["loop", "show", loop["id"]]) == 0
    shown = capsys.readouterr().out
    assert "canary" in shown and "credit/2" in shown
    assert cli(["loop", "ls"]) == 0
    assert loop["id"] in capsys.readouterr().out
    assert cli(["loop", "show", "../../etc/passwd"]) != 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "store_uri", ["sqlite"], indirect=True
)  # the flow, not the store: see module doc
def test_a_training_command_gets_the_dataset_in_its_environment(monitored: Monitored) -> None:
    import sys

    from loopline.loop.retrain import run_loop
    from loopline.monitoring.policy import load_policy

    root = monitored.stores.settings.root
    path = _policy(root, "trainer:fit")
    (root / "train_command.py").write_text(COMMAND_TRAINER)
    text = path.read_text().replace(
        'train: "trainer:fit"', f'command: "{sys.executable} train_command.py"'
    )
    path.write_text(text)
    loop = run_loop("credit", policy=load_policy(path, project_root=root))
    assert loop.status == "canary", loop.to_dict()
    assert loop.detail("loop.trained")["candidate"] == "credit/2"
    assert _deployment().spec.canary.model == "credit/2"
