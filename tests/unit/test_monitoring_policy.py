"""Monitoring policies: a valid `[monitor.NAME]` table and YAML file parse to the expected
objects; every kind of mistake fails with InvalidInput naming the TOML key or YAML line."""

from __future__ import annotations

import math
import os
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from loopline.config import load_settings
from loopline.errors import InvalidInput, NotFound
from loopline.monitoring.policy import (
    Action,
    MonitorPolicy,
    Thresholds,
    default_policy,
    load_policy,
    policies_from_settings,
    policy_for,
)

VALID_TOML = """
[monitor.credit]
window = "1h"
every = "10m"
min_rows = 500
reference = "training"
segments = ["region"]
exact_max_rows = 5000000
cooldown = "1h"

[monitor.credit.thresholds]
psi = 0.2
null_rate = 0.05
max_metric_drop = 0.05
drifted_features = 2

[monitor.credit.features.age]
psi = 0.3

[[monitor.credit.actions]]
when = "drift"
do = "alert"
webhook = "${SLACK_WEBHOOK}"
allow_hosts = ["127.0.0.1", "[::1]"]

[[monitor.credit.actions]]
when = "performance"
do = "retrain"
train = "mypkg.train:fit"
target = "default"
params = { C = 1.0, penalty = "l2" }
canary_weight = 0.2
judge_min_rows = 300
judge_after = "2h"

[[monitor.credit.actions]]
do = "alert"
file = "monitoring/alerts.jsonl"

[monitor."fraud.v2"]
window = "30m"
reference = "fraud@3"
"""

VALID_YAML = """\
deployment: credit
window: 2h
every: 5m
min_rows: 0
reference: credit@latest
cooldown: 0s
thresholds:
  psi: 0.25
  p_value: 0.001
features:
  income:
    js: 0.1
actions:
  - when: integrity
    do: alert
    log: true
  - when: canary
    do: rollback
  - do: retrain
    command: python train.py
    target: default
"""


def write_toml(root: Path, text: str) -> Path:
    (root / "loopline.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_a_valid_toml_table_parses_to_the_expected_policy(tmp_path: Path) -> None:
    settings = load_settings(write_toml(tmp_path, VALID_TOML))
    policies = policies_from_settings(settings)
    assert sorted(policies) == ["credit", "fraud.v2"]
    credit = policies["credit"]
    assert credit.deployment == "credit"
    assert credit.source == "loopline.toml [monitor.credit]"
    assert (credit.window, credit.every, credit.cooldown) == (
        timedelta(hours=1),
        timedelta(minutes=10),
        timedelta(hours=1),
    )
    assert (credit.min_rows, credit.exact_max_rows) == (500, 5_000_000)
    assert credit.reference == "training" and credit.segments == ("region",)
    assert credit.thresholds.psi == 0.2 and credit.thresholds.null_rate == 0.05
    assert credit.thresholds.max_metric_drop == 0.05 and credit.thresholds.drifted_features == 2
    assert credit.thresholds.wasserstein is None  # unset: the drift module's default
    assert credit.feature_thresholds["age"].psi == 0.3
    alert, retrain, to_file = credit.actions
    assert alert == Action(
        kind="alert", when="drift", webhook="${SLACK_WEBHOOK}", allow_hosts=("127.0.0.1", "::1")
    )
    assert retrain.kind == "retrain" and retrain.train == "mypkg.train:fit"
    assert retrain.target == "default" and retrain.params == {"C": 1.0, "penalty": "l2"}
    assert (retrain.canary_weight, retrain.judge_min_rows) == (0.2, 300)
    assert retrain.judge_after == timedelta(hours=2)
    assert to_file.file == "monitoring/alerts.jsonl" and to_file.when == "any"
    fraud = policies["fraud.v2"]
    assert fraud.window == timedelta(minutes=30) and fraud.reference == "fraud@3"
    assert fraud.min_rows == 100 and fraud.actions == ()


def test_feature_thresholds_override_the_global_ones_for_that_feature_only(
    tmp_path: Path,
) -> None:
    credit = policies_from_settings(load_settings(write_toml(tmp_path, VALID_TOML)))["credit"]
    age = credit.thresholds.for_feature("age")
    assert age.psi == 0.3 and age.null_rate == 0.05 and age.drifted_features == 2
    assert credit.for_feature("income") == credit.thresholds.for_feature("income")
    assert credit.for_feature("income").psi == 0.2
    assert credit.actions_for("drift") == (credit.actions[0], credit.actions[2])
    assert credit.actions_for("performance") == credit.actions[1:]
    with pytest.raises(InvalidInput, match="unknown check 'drfit'"):
        credit.actions_for("drfit")
    with pytest.raises(InvalidInput, match="feature name is text"):
        credit.for_feature(3)  # type: ignore[arg-type]


def test_a_valid_yaml_file_parses_to_the_expected_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(VALID_YAML, encoding="utf-8")
    policy = load_policy(path)
    assert policy.deployment == "credit" and policy.source == str(path)
    assert policy.window == timedelta(hours=2) and policy.every == timedelta(minutes=5)
    assert policy.min_rows == 0 and policy.cooldown == timedelta(0)
    assert policy.reference == "credit@latest"
    assert policy.thresholds.psi == 0.25 and policy.thresholds.p_value == 0.001
    assert policy.for_feature("income").js == 0.1 and policy.for_feature("income").psi == 0.25
    log, rollback, retrain = policy.actions
    assert log == Action(kind="alert", when="integrity", log=True)
    assert rollback == Action(kind="rollback", when="canary")
    assert retrain.command == "python train.py" and retrain.train is None
    assert retrain.canary_weight == 0.1 and retrain.judge_after is None  # the defaults


def test_policy_for_takes_the_file_then_the_table_then_the_default(tmp_path: Path) -> None:
    settings = load_settings(write_toml(tmp_path, VALID_TOML))
    path = tmp_path / "policy.yaml"
    path.write_text(VALID_YAML, encoding="utf-8")
    assert policy_for("credit", settings, path).source == str(path)
    assert policy_for("credit", settings).source == "loopline.toml [monitor.credit]"
    fallback = policy_for("unwatched", settings)
    assert fallback == default_policy("unwatched") and fallback.source == "default"
    assert (fallback.window, fallback.every) == (timedelta(hours=1), timedelta(minutes=10))
    assert (fallback.min_rows, fallback.reference, fallback.actions) == (100, "training", ())
    assert policies_from_settings(load_settings(write_toml(tmp_path, ""))) == {}
    with pytest.raises(InvalidInput, match="invalid deployment name"):
        policy_for("no spaces", settings)


def test_a_yaml_file_without_deployment_takes_the_one_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("window: 1h\n", encoding="utf-8")
    assert load_policy(path, deployment="churn").deployment == "churn"
    with pytest.raises(InvalidInput, match="names no deployment"):
        load_policy(path)
    with pytest.raises(NotFound, match="no monitoring policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInput, match="a policy path is text"):
        load_policy(3)  # type: ignore[arg-type]


def test_the_webhook_url_stays_out_of_repr_and_to_dict() -> None:
    action = Action(kind="alert", webhook="https://hooks.example.com/services/T000/SECRETPART")
    policy = MonitorPolicy(deployment="credit", actions=(action,))
    assert "SECRETPART" not in repr(action) and "SECRETPART" not in repr(policy)
    assert "SECRETPART" not in str(policy.to_dict())
    assert action.destination == "https://hooks.example.com"


def test_objects_built_in_code_are_checked_too() -> None:
    with pytest.raises(InvalidInput, match="psi must lie in"):
        Thresholds(psi=-0.1)
    with pytest.raises(InvalidInput, match="finite"):
        Thresholds(js=math.nan)
    with pytest.raises(InvalidInput, match="exactly one of webhook"):
        Action(kind="alert")
    with pytest.raises(InvalidInput, match="kind is one of"):
        Action(kind="page")
    with pytest.raises(InvalidInput, match="invalid deployment name"):
        MonitorPolicy(deployment="")
    with pytest.raises(InvalidInput, match="Action objects"):
        MonitorPolicy(deployment="credit", actions=("alert",))  # type: ignore[arg-type]


# --- every mistake, in YAML: the message names the line (the one marked #!) ----------------

YAML_MISTAKES = {
    "unknown key": ("windw: 1h  #!", "unknown key"),
    "duration text": ("window: soon  #!", "not a duration"),
    "duration timestamp": ("window: '2026-01-01T00:00Z'  #!", "not a duration"),
    "duration number": ("window: 3600  #!", "expected a duration"),
    "duration zero": ("every: 0s  #!", "longer than zero"),
    "duration negative": ("every: -5m  #!", "not a duration"),
    "cooldown": ("cooldown: 1 hour  #!", "not a duration"),
    "min_rows negative": ("min_rows: -1  #!", "whole number >= 0"),
    "min_rows float": ("min_rows: 1.5  #!", "whole number"),
    "min_rows boolean": ("min_rows: true  #!", "whole number"),
    "exact_max_rows zero": ("exact_max_rows: 0  #!", "whole number >= 1"),
    "reference without version": ("reference: credit  #!", "NAME@VERSION"),
    "reference bad name": ("reference: ../x@3  #!", "invalid dataset name"),
    "segments not a list": ("segments: region  #!", "expected a list of column names"),
    "segments repeated": ("segments:\n  - region\n  - region  #!", "listed twice"),
    "thresholds not a table": ("thresholds: 0.2  #!", "expected a table"),
    "threshold NaN": ("thresholds:\n  psi: .nan  #!", "finite"),
    "threshold infinite": ("thresholds:\n  psi: .inf  #!", "finite"),
    "threshold negative": ("thresholds:\n  psi: -0.1  #!", "psi must lie in [0, inf)"),
    "threshold text": ("thresholds:\n  psi: high  #!", "expected a number"),
    "p_value above one": ("thresholds:\n  p_value: 1.5  #!", "p_value must lie in (0, 1]"),
    "p_value zero": ("thresholds:\n  p_value: 0  #!", "p_value must lie in (0, 1]"),
    "null_rate above one": ("thresholds:\n  null_rate: 2  #!", "null_rate must lie in"),
    "drifted_features zero": ("thresholds:\n  drifted_features: 0  #!", ">= 1"),
    "drifted_features float": ("thresholds:\n  drifted_features: 1.5  #!", "whole number"),
    "unknown threshold": ("thresholds:\n  psy: 0.2  #!", "unknown key"),
    "feature metric drop": (
        "features:\n  age:\n    max_metric_drop: 0.1  #!",
        "unknown key",
    ),
    "feature negative": ("features:\n  age:\n    psi: -1  #!", "psi must lie in"),
    "features not a table": ("features: [age]  #!", "expected a table of features"),
    "actions not a list": ("actions:  #!\n  do: alert", "expected a list of actions"),
    "unknown when": ("actions:\n  - when: drfit  #!\n    do: rollback", "drift, integrity"),
    "unknown do": ("actions:\n  - do: page  #!", "alert, rollback, retrain"),
    "no do": ("actions:\n  - when: drift  #!", "needs 'do'"),
    "alert without target": ("actions:\n  - do: alert  #!", "exactly one of webhook"),
    "alert with two targets": (
        "actions:\n  - do: alert  #!\n    log: true\n    file: a.jsonl",
        "exactly one of webhook",
    ),
    "log not a boolean": ("actions:\n  - do: alert\n    log: 'yes'  #!", "true or false"),
    "retrain without train": (
        "actions:\n  - do: retrain  #!\n    target: y",
        "and has neither",
    ),
    "retrain with train and command": (
        "actions:\n  - do: retrain  #!\n    train: m:f\n    command: x\n    target: y",
        "not both",
    ),
    "retrain without target": ("actions:\n  - do: retrain  #!\n    train: m:f", "needs target"),
    "train with a dot": (
        "actions:\n  - do: retrain\n    train: mypkg.train.fit  #!\n    target: y",
        "module.path:function",
    ),
    "train with a call": (
        "actions:\n  - do: retrain\n    train: 'mypkg:fit()'  #!\n    target: y",
        "module.path:function",
    ),
    "train not an identifier": (
        "actions:\n  - do: retrain\n    train: 1pkg:fit  #!\n    target: y",
        "module.path:function",
    ),
    "alert key on a retrain": (
        "actions:\n  - do: retrain\n    webhook: http://x.example  #!",
        "unknown key",
    ),
    "retrain key on an alert": (
        "actions:\n  - do: alert\n    log: true\n    train: m:f  #!",
        "unknown key",
    ),
    "canary weight one": (
        "actions:\n  - do: retrain\n    train: m:f\n    target: y\n    canary_weight: 1  #!",
        "between 0 and 1",
    ),
    "canary weight NaN": (
        "actions:\n  - do: retrain\n    train: m:f\n    target: y\n    canary_weight: .nan  #!",
        "finite",
    ),
    "judge_min_rows zero": (
        "actions:\n  - do: retrain\n    train: m:f\n    target: y\n    judge_min_rows: 0  #!",
        ">= 1",
    ),
    "judge_after": (
        "actions:\n  - do: retrain\n    train: m:f\n    target: y\n    judge_after: later  #!",
        "not a duration",
    ),
    "params NaN": (
        "actions:\n  - do: retrain\n    train: m:f\n    target: y\n    params:\n      C: .nan  #!",
        "finite",
    ),
    "file climbs out": ("actions:\n  - do: alert\n    file: ../alerts.jsonl  #!", "'..'"),
    "file absolute": ("actions:\n  - do: alert\n    file: /tmp/alerts.jsonl  #!", "absolute"),
    "file in .git": ("actions:\n  - do: alert\n    file: .git/hooks/post-commit  #!", ".git"),
    "file in .loopline": ("actions:\n  - do: alert\n    file: .LOOPLINE/a.jsonl  #!", "LOOPLINE"),
    "webhook scheme": (
        "actions:\n  - do: alert\n    webhook: ftp://hooks.example/x  #!",
        "http:// or https://",
    ),
    "webhook user info": (
        "actions:\n  - do: alert\n    webhook: https://me:pw@hooks.example/x  #!",
        "user name or password",
    ),
    "webhook variable name": (
        "actions:\n  - do: alert\n    webhook: https://${1BAD}/x  #!",
        "names no environment variable",
    ),
    "webhook a number": ("actions:\n  - do: alert\n    webhook: 3  #!", "a URL"),
    "allow_hosts text": (
        "actions:\n  - do: alert\n    webhook: https://a.example\n    allow_hosts: a  #!",
        "expected a list",
    ),
    "allow_hosts without a webhook": (
        "actions:\n  - do: alert  #!\n    log: true\n    allow_hosts: [10.0.0.7]",
        "allow_hosts applies to a webhook",
    ),
    "repeated key": ("window: 1h\nwindow: 2h  #!", "repeated"),
    "deployment mismatch": ("deployment: fraud  #!", "not of 'credit'"),
    "deployment bad name": ("deployment: 'no spaces'  #!", "invalid deployment name"),
    "broken YAML": ("window: [1h\nevery: 10m  #!", "not valid YAML"),
}


@pytest.mark.parametrize(("body", "words"), YAML_MISTAKES.values(), ids=YAML_MISTAKES.keys())
def test_every_yaml_mistake_names_its_line(tmp_path: Path, body: str, words: str) -> None:
    text = "# the policy of credit\n" + body + "\n"
    marked = [number for number, line in enumerate(text.splitlines(), 1) if "#!" in line]
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_policy(path, deployment="credit")
    message = caught.value.message
    assert f"line {marked[0]}" in message, message
    assert words in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "is empty"), ("- window: 1h\n", "a mapping of keys"), ("window: 1h\n", "no deployment")],
)
def test_a_yaml_file_that_is_not_a_policy_says_so(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=words):
        load_policy(path)


def test_an_alert_file_through_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    os.symlink(outside, project / "monitoring")
    path = project / "policy.yaml"
    path.write_text("actions:\n  - do: alert\n    file: monitoring/a.jsonl\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"line 3 .*symbolic link"):
        load_policy(path, deployment="credit", project_root=project)
    assert load_policy(path, deployment="credit").actions[0].file == "monitoring/a.jsonl"


# --- every mistake, in loopline.toml: the message names the table and the key --------------

TOML_MISTAKES = {
    "unknown key": ('windw = "1h"', "[monitor.credit] windw: unknown key"),
    "bad duration": ('window = "soon"', "[monitor.credit] window: not a duration"),
    "duration number": ("every = 600", "[monitor.credit] every: expected a duration"),
    "min_rows": ("min_rows = -3", "[monitor.credit] min_rows: expected a whole number >= 0"),
    "reference": ('reference = "credit"', "[monitor.credit] reference: expected 'training'"),
    "segments": ('segments = "region"', "[monitor.credit] segments: expected a list"),
    "threshold NaN": ("[monitor.credit.thresholds]\npsi = nan", "[monitor.credit.thresholds] psi"),
    "threshold inf": ("[monitor.credit.thresholds]\njs = inf", "[monitor.credit.thresholds] js"),
    "threshold negative": (
        "[monitor.credit.thresholds]\nwasserstein = -1.0",
        "[monitor.credit.thresholds] wasserstein: wasserstein must lie in",
    ),
    "unseen_share": (
        "[monitor.credit.thresholds]\nunseen_share = 1.5",
        "[monitor.credit.thresholds] unseen_share",
    ),
    "drifted_features": (
        "[monitor.credit.thresholds]\ndrifted_features = 0",
        "[monitor.credit.thresholds] drifted_features",
    ),
    "unknown threshold": (
        "[monitor.credit.thresholds]\npsy = 0.1",
        "[monitor.credit.thresholds] psy: unknown key",
    ),
    "feature threshold": (
        "[monitor.credit.features.age]\npsi = -1",
        "[monitor.credit.features.age] psi",
    ),
    "dotted feature": (
        '[monitor.credit.features."a.b"]\nout_of_range = 2',
        '[monitor.credit.features."a.b"] out_of_range',
    ),
    "when": (
        '[[monitor.credit.actions]]\nwhen = "sometimes"\ndo = "rollback"',
        "[[monitor.credit.actions]] number 1: when",
    ),
    "do": ('[[monitor.credit.actions]]\ndo = "page"', "[[monitor.credit.actions]] number 1: do"),
    "alert target": (
        '[[monitor.credit.actions]]\ndo = "rollback"\n[[monitor.credit.actions]]\ndo = "alert"',
        "[[monitor.credit.actions]] number 2: an alert action needs exactly one",
    ),
    "train": (
        '[[monitor.credit.actions]]\ndo = "retrain"\ntrain = "fit"\ntarget = "y"',
        "[[monitor.credit.actions]] number 1: train",
    ),
    "params": (
        '[[monitor.credit.actions]]\ndo = "retrain"\ntrain = "m:f"\ntarget = "y"\n'
        "params = { C = nan }",
        "[[monitor.credit.actions]] number 1: params.C",
    ),
    "file": (
        '[[monitor.credit.actions]]\ndo = "alert"\nfile = ".git/config"',
        "[[monitor.credit.actions]] number 1: file",
    ),
    "webhook": (
        '[[monitor.credit.actions]]\ndo = "alert"\nwebhook = "file:///etc/passwd"',
        "[[monitor.credit.actions]] number 1: webhook",
    ),
    "actions a table": ('[monitor.credit.actions]\ndo = "alert"', "[monitor.credit] actions"),
}


@pytest.mark.parametrize(("body", "place"), TOML_MISTAKES.values(), ids=TOML_MISTAKES.keys())
def test_every_toml_mistake_names_its_table_and_key(tmp_path: Path, body: str, place: str) -> None:
    head = "" if body.startswith("[") else "[monitor.credit]\n"
    settings = load_settings(write_toml(tmp_path, head + body + "\n"))
    with pytest.raises(InvalidInput) as caught:
        policies_from_settings(settings)
    assert caught.value.message.startswith(place), caught.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[monitor]\nwindow = "1h"\n', "[monitor] window: expected a [monitor.DEPLOYMENT] table"),
        ('[monitor."no spaces"]\nwindow = "1h"\n', "invalid deployment name"),
    ],
)
def test_the_monitor_section_holds_only_deployment_tables(
    tmp_path: Path, text: str, words: str
) -> None:
    settings = load_settings(write_toml(tmp_path, text))
    with pytest.raises(InvalidInput) as caught:
        policies_from_settings(settings)
    assert words in caught.value.message
