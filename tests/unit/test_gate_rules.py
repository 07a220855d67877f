"""Promotion gate rules and policies: grammar, evaluation (failing closed) and policy files."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.config import Settings, load_settings
from loopline.errors import InvalidInput, NotFound
from loopline.promotion._rules import OPERATORS, Rule, evaluate_rules, parse_rule
from loopline.promotion.policy import (
    Policy,
    load_policy,
    policy_from_toml,
    policy_from_yaml,
    project_policy,
)

FACTS: dict[str, Any] = {
    "metrics": {"roc_auc": 0.912, "accuracy": 0.88},
    "slices_min": {"roc_auc": 0.86},
    "slices_max": {"roc_auc": 0.95},
    "slices": {
        "segment=gold": {"metrics": {"roc_auc": 0.93}},
        "young": {"metrics": {"roc_auc": 0.84}},
    },
    "fairness": {"sex": {"demographic_parity_diff": 0.04}},
    "compare": {"champion": {"roc_auc": -0.002}},
    "latency": {"p99_ms": 3.5},
    "robustness": {"flip_rate": 0.01},
    "size": {"bytes": 12_000_000},
}


@contextlib.contextmanager
def old_spelling(text: str) -> Iterator[None]:
    """Double-quoted path segments still parse, with a DeprecationWarning naming backticks."""
    if '"' not in text:
        yield
        return
    with pytest.deprecated_call(match="names are bare or in backticks"):
        yield


def syntax_error(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_rule(text)
    return info.value


def position(error: InvalidInput) -> int:
    match = re.search(r" at position (\d+)\n", error.message)
    assert match, error.message
    return int(match.group(1))


def check(rule: str, facts: dict[str, Any] = FACTS) -> tuple[bool, float | None, str]:
    [result] = evaluate_rules([parse_rule(rule)], facts)
    return result.passed, result.actual, result.reason


# Parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "op", "threshold"),
    [
        ("metrics.roc_auc >= 0.90", ("metrics", "roc_auc"), ">=", 0.9),
        ("slices.min.roc_auc >= 0.85", ("slices", "min", "roc_auc"), ">=", 0.85),
        (
            "fairness.sex.demographic_parity_diff <= 0.1",
            ("fairness", "sex", "demographic_parity_diff"),
            "<=",
            0.1,
        ),
        (
            "compare.champion.roc_auc >= -0.005        # not worse by more than 0.005",
            ("compare", "champion", "roc_auc"),
            ">=",
            -0.005,
        ),
        ("latency.p99_ms <= 5", ("latency", "p99_ms"), "<=", 5.0),
        ("robustness.flip_rate <= 0.02", ("robustness", "flip_rate"), "<=", 0.02),
        ("size.bytes < 50e6", ("size", "bytes"), "<", 50e6),
        ("x.y>=-1E-3", ("x", "y"), ">=", -0.001),
        ("x.y < inf", ("x", "y"), "<", math.inf),
        ("x.y > -Infinity", ("x", "y"), ">", -math.inf),
        ("x.y == .5", ("x", "y"), "==", 0.5),
        ("x.y != +3.", ("x", "y"), "!=", 3.0),
        ("model-v2.auc_0 > 1", ("model-v2", "auc_0"), ">", 1.0),
        ("  metrics.auc   >=   1  ", ("metrics", "auc"), ">=", 1.0),
    ],
)
def test_rules_parse_into_path_operator_and_threshold(
    text: str, path: tuple[str, ...], op: str, threshold: float
) -> None:
    rule = parse_rule(text)
    assert (rule.path, rule.op, rule.threshold) == (path, op, threshold)
    assert rule.text == text.strip()


def test_quoted_segments_hold_dots_spaces_and_escaped_quotes() -> None:
    with old_spelling('"'):
        rule = parse_rule(r'slices."segment=gold".roc_auc >= 0.9')
    assert rule.path == ("slices", "segment=gold", "roc_auc")
    with old_spelling('"'):
        rule = parse_rule(r'metrics."a.b c"."say \"hi\" \\ there" > 0')
    assert rule.path == ("metrics", "a.b c", 'say "hi" \\ there')
    assert parse_rule(rule.path_text + " > 0").path == rule.path


def test_backticks_quote_segments_and_path_text_uses_them() -> None:
    rule = parse_rule(r"slices.`segment=gold`.roc_auc >= 0.9")
    assert rule.path == ("slices", "segment=gold", "roc_auc")
    assert rule.path_text == "slices.`segment=gold`.roc_auc"
    rule = parse_rule(r"metrics.`a.b c`.`say \`hi\` \\ there` > 0")
    assert rule.path == ("metrics", "a.b c", "say `hi` \\ there")


@pytest.mark.parametrize(("written", "op"), [("=", "=="), ("==", "=="), ("<>", "!="), ("!=", "!=")])
def test_equality_has_the_spellings_of_every_condition(written: str, op: str) -> None:
    rule = parse_rule(f"metrics.auc {written} 0.9")
    assert (rule.op, rule.text) == (op, f"metrics.auc {written} 0.9")
    assert check(f"x.y {written} 2", {"x": {"y": 2.0}})[0] is (op == "==")


@given(st.lists(st.text(min_size=1), min_size=1, max_size=4))
def test_any_path_round_trips_through_its_quoted_text(path: list[str]) -> None:
    rule = Rule("r", tuple(path), ">=", 0.0)
    assert parse_rule(f"{rule.path_text} >= 0").path == tuple(path)


@pytest.mark.parametrize(
    ("text", "at", "words"),
    [
        ("metrics.auc >= ", 14, "expected a number"),
        ("metrics.auc 0.9", 12, "expected an operator"),
        ("metrics.auc", 11, "expected an operator"),
        ('slices."segment=gold.roc_auc >= 1', 7, "unterminated quoted name"),
        ("metrics.auc >= 0.9 extra", 19, "expected the end of the rule"),
        ("metrics.auc >= 0.9 0.8", 19, "expected the end of the rule"),
        ("", 0, "empty rule"),
        ("   # only a comment", 0, "empty rule"),
        ("metrics.auc => 0.9", 12, "unknown operator '=>'"),
        ("metrics.auc === 0.9", 12, "unknown operator '==='"),  # '=' means '==' now
        ("metrics.auc >= 0.9 and x.y > 1", 19, "expected the end of the rule"),
        ("0.9 <= metrics.auc", 0, "expected a path such as metrics.roc_auc, got '0.9'"),
        ("metrics.auc in (1, 2)", 12, "operator 'in' cannot be used in a gate rule"),
        ("metrics..auc > 1", 8, "expected a name"),
        ("metrics. > 1", 8, "expected a name"),
        ("metrics.a$c > 1", 9, "unexpected character '$'"),
        ('x."" > 1', 2, "empty quoted name"),
        ("x.y >= 5ms", 7, "malformed number '5ms'"),
        ("x.y >= 1.2.3", 7, "malformed number"),
        ("x.y >= nan", 7, "cannot be NaN"),
        ("x.y >= # no number", 6, "expected a number"),
        ("x.y >= abc", 7, "expected a number, got 'abc'"),
        ("x . y >= 1", 2, "expected an operator"),
    ],
)
def test_syntax_errors_name_the_position_and_draw_a_caret(text: str, at: int, words: str) -> None:
    error = syntax_error(text)
    assert position(error) == at
    assert words in error.message
    first, shown, caret = error.message.split("\n")
    assert first.startswith(f"gate rule {text!r}: ")
    assert caret.index("^") - 4 == at and shown[4:] == text.replace("\t", " ")


def test_the_documented_error_message_is_exact() -> None:
    first_line = syntax_error("metrics.auc >= ").message.splitlines()[0]
    assert first_line == "gate rule 'metrics.auc >= ': expected a number at position 14"


def test_a_rule_must_be_text() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_rule(0.9)  # type: ignore[arg-type]


# Evaluation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "passed", "actual"),
    [
        ("metrics.roc_auc >= 0.90", True, 0.912),
        ("slices.min.roc_auc >= 0.85", True, 0.86),
        ("slices.max.roc_auc <= 0.94", False, 0.95),
        ('slices."segment=gold".roc_auc >= 0.9', True, 0.93),
        ("slices.young.roc_auc >= 0.85", False, 0.84),
        ("fairness.sex.demographic_parity_diff <= 0.1", True, 0.04),
        ("compare.champion.roc_auc >= -0.005", True, -0.002),
        ("compare.champion.roc_auc >= 0", False, -0.002),
        ("latency.p99_ms <= 5", True, 3.5),
        ("robustness.flip_rate <= 0.02", True, 0.01),
        ("size.bytes < 50e6", True, 12e6),
    ],
)
def test_each_example_rule_resolves_its_fact(rule: str, passed: bool, actual: float) -> None:
    with old_spelling(rule):
        assert check(rule)[:2] == (passed, actual)


def test_reasons_show_the_comparison() -> None:
    assert check("metrics.roc_auc >= 0.90")[2] == "0.912 >= 0.9"
    assert check("slices.young.roc_auc >= 0.85")[2] == "0.84 is not >= 0.85"
    assert check("size.bytes < 50e6")[2] == "12000000 < 50000000"


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize("value", [1.0, 2.0, 3.0])
def test_every_operator_compares_like_python(op: str, value: float) -> None:
    expected = {
        ">=": value >= 2,
        "<=": value <= 2,
        ">": value > 2,
        "<": value < 2,
        "==": value == 2,
        "!=": value != 2,
    }[op]
    assert check(f"x.y {op} 2", {"x": {"y": value}})[0] is expected


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({}, "no value for 'fairness.sex.demographic_parity_diff' in the evaluation"),
        ({"fairness": {"sex": {}}}, "no value for"),
        ({"fairness": {"sex": None}}, "no value for"),
        ({"fairness": {"sex": {"demographic_parity_diff": None}}}, "no value for"),
        ({"fairness": {"sex": {"demographic_parity_diff": "0.01"}}}, "not a number (str)"),
        ({"fairness": {"sex": {"demographic_parity_diff": {"a": 1}}}}, "group of values"),
        ({"fairness": {"sex": [0.01]}}, "no value for"),
        ({"fairness": {"sex": {"demographic_parity_diff": math.nan}}}, "is NaN"),
    ],
)
def test_missing_or_unusable_facts_fail_closed(facts: dict[str, Any], reason: str) -> None:
    passed, actual, why = check("fairness.sex.demographic_parity_diff <= 0.1", facts)
    assert not passed and actual is None
    assert reason in why


def test_missing_fact_fails_even_for_not_equal() -> None:
    assert check("x.y != 1", {})[0] is False


def test_slice_shortcuts_need_their_report_keys() -> None:
    assert not check("slices.min.roc_auc >= 0", {"slices": {"min": {"metrics": {"roc_auc": 1}}}})[0]
    assert not check("slices.gold.roc_auc >= 0", {"slices": {"gold": {"roc_auc": 1}}})[0]


def test_booleans_count_as_zero_and_one_and_infinities_compare() -> None:
    assert check("checks.ok == 1", {"checks": {"ok": True}})[:2] == (True, 1.0)
    assert check("checks.ok >= 1", {"checks": {"ok": False}})[:2] == (False, 0.0)
    assert check("x.y < inf", {"x": {"y": 1e308}})[0]
    assert not check("x.y < inf", {"x": {"y": math.inf}})[0]


def test_evaluate_rules_accepts_text_and_rejects_non_mapping_facts() -> None:
    [result] = evaluate_rules(["metrics.roc_auc > 0.5"], FACTS)
    assert result.passed and result.rule == "metrics.roc_auc > 0.5"
    assert evaluate_rules("metrics.roc_auc > 0.5", FACTS) == [result]
    with pytest.raises(InvalidInput, match="must be a mapping"):
        evaluate_rules(["x.y > 1"], [("x", 1)])  # type: ignore[arg-type]


def test_result_to_dict_is_json_safe() -> None:
    [result] = evaluate_rules(["x.y <= inf"], {"x": {"y": -math.inf}})
    assert result.passed
    assert result.to_dict() == {
        "rule": "x.y <= inf",
        "passed": True,
        "actual": None,
        "threshold": None,
        "op": "<=",
        "reason": "-inf <= inf",
    }


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=True),
)
def test_a_rule_agrees_with_python_comparison(a: float, b: float) -> None:
    [result] = evaluate_rules([parse_rule(f"x.y >= {b!r}")], {"x": {"y": a}})
    assert result.passed is (a >= b)
    assert result.threshold == b


# Policies ------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_policy_yaml_loads_rules_and_approval(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n"
        "  - metrics.roc_auc >= 0.90\n"
        "  - slices.min.roc_auc >= 0.85   # worst slice\n"
        "  - 'slices.\"segment=gold\".roc_auc >= 0.9'\n"
        "require_approval: true\n",
    )
    with old_spelling('"'):
        policy = load_policy(path)
    assert [r.path for r in policy.rules] == [
        ("metrics", "roc_auc"),
        ("slices", "min", "roc_auc"),
        ("slices", "segment=gold", "roc_auc"),
    ]
    assert policy.require_approval and policy.approval_stage == "production"
    assert policy.source == str(path)
    assert policy.to_dict()["rules"][1] == "slices.min.roc_auc >= 0.85"
    assert all(r.passed for r in policy.evaluate(FACTS))


def test_policy_round_trips_through_to_dict() -> None:
    policy = policy_from_toml({"rules": ["x.y > 1"], "approval_stage": "staging"})
    data = policy.to_dict()
    assert data["source"] == "loopline.toml [gates]"
    del data["source"]
    assert policy_from_toml(data) == policy


def test_an_empty_rule_list_means_no_gates(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "rules: []\n")).rules == ()
    assert policy_from_toml({}) == Policy((), source="loopline.toml [gates]")
    assert policy_from_toml({"require_approval": True}).require_approval


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [metrics.auc >= 1\n", "not valid YAML"),
        ("", "is empty"),
        ("- metrics.auc >= 1\n", "must be a mapping with 'rules', got a list"),
        ("rules: [x.y > 1]\nrequire_aproval: true\n", "unknown key 'require_aproval'"),
        ("rules: metrics.auc >= 1\n", "'rules' must be a list of rules"),
        ("rules:\n  - x.y > 1\n  - 0.9\n", "rules[1] must be a string, got a number"),
        ("rules:\n  - x.y > 1\n  - {a: b}\n", "rules[1] must be a string, got a mapping"),
        ("rules:\n  - x.y > 1\n  - x.y >=\n", "rules[1]: gate rule 'x.y >=': expected a number"),
        ("require_approval: 'yes please'\n", "'require_approval' must be true or false"),
        ("approval_stage: ''\n", "'approval_stage' must be a stage name"),
        ("evaluation: [credit.csv]\n", "'evaluation' must be a mapping, got a list"),
        ("evaluation: {dataset: credit.csv}\n", "unknown key 'dataset'"),
        ("evaluation: {slices: segment}\n", "'slices' must be a list of column names"),
        ("evaluation: {target: 3}\n", "'target' must be a non-empty string"),
    ],
)
def test_malformed_policy_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_policy(path)
    assert str(path) in info.value.message
    assert message in info.value.message


def test_bad_gates_section_names_the_section_and_rule_index() -> None:
    with pytest.raises(InvalidInput, match=r"\[gates\] in loopline.toml: rules\[2\]: gate rule"):
        policy_from_toml({"rules": ["x.y > 1", "x.y < 2", "x.y ~ 3"]})
    with pytest.raises(InvalidInput, match=r"\[gates\] in .*unknown key 'rule'"):
        policy_from_toml({"rule": "x.y > 1"})
    with pytest.raises(InvalidInput, match="must be a mapping"):
        policy_from_toml(["x.y > 1"])  # type: ignore[arg-type]


def test_a_missing_policy_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no gate policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_from_yaml_checks_rule_objects() -> None:
    assert policy_from_yaml("rules: [x.y > 1]", source="api").source == "api"
    with pytest.raises(InvalidInput, match="Rule objects"):
        Policy(("x.y > 1",))  # type: ignore[arg-type]


def test_policy_evaluation_defaults_are_read_and_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules: [metrics.roc_auc >= 0.9]\n"
        "evaluation:\n  data: credit.csv@latest\n  target: default\n  slices: [segment]\n",
    )
    policy = load_policy(path)
    assert policy.evaluation == {
        "data": "credit.csv@latest",
        "target": "default",
        "slices": ["segment"],
    }
    assert policy.to_dict()["evaluation"] == policy.evaluation
    assert Policy(()).evaluation == {}


def test_project_policy_reads_the_gates_table(tmp_path: Path) -> None:
    gates: dict[str, object] = {
        "rules": ["metrics.roc_auc >= 0.9"],
        "require_approval": True,
        "evaluation": {"sensitive": ["sex"]},
    }
    settings = Settings(root=tmp_path, store_uri="sqlite://", artifact_uri="a", gates=gates)
    policy = project_policy(settings)
    assert policy.source == f"{tmp_path / 'loopline.toml'} [gates]"
    assert policy.require_approval and policy.evaluation == {"sensitive": ["sex"]}
    empty = Settings(root=tmp_path, store_uri="sqlite://", artifact_uri="a")
    assert project_policy(empty).rules == ()


# --- [gates.MODEL] tables ---------------------------------------------------------------------

PER_MODEL_TOML = """
[gates]
rules = ["metrics.roc_auc >= 0.9"]
require_approval = true

[gates.evaluation]
data = "credit@3"
target = "default"

[gates.wine]
rules = ["metrics.accuracy >= 0.8", "latency.p99_ms <= 50"]

[gates.wine.evaluation]
data = "wine@1"
target = "quality"

[gates."not-registered-yet"]
rules = ["metrics.f1 >= 0.5"]
"""


def _settings_from(tmp_path: Path, text: str) -> Settings:
    (tmp_path / "loopline.toml").write_text(text, encoding="utf-8")
    return load_settings(tmp_path)


def test_a_model_table_is_that_models_whole_policy(tmp_path: Path) -> None:
    settings = _settings_from(tmp_path, PER_MODEL_TOML)
    wine = project_policy(settings, "wine")
    assert [rule.text for rule in wine.rules] == ["metrics.accuracy >= 0.8", "latency.p99_ms <= 50"]
    assert wine.evaluation == {"data": "wine@1", "target": "quality"}
    assert not wine.require_approval  # replaced, not merged with [gates]
    assert wine.source == f"{tmp_path / 'loopline.toml'} [gates.wine]"
    for other in ("churn", None):
        default = project_policy(settings, other)
        assert [rule.text for rule in default.rules] == ["metrics.roc_auc >= 0.9"]
        assert default.evaluation == {"data": "credit@3", "target": "default"}
        assert default.require_approval and default.source.endswith("[gates]")


def test_model_tables_match_the_registered_name_exactly(tmp_path: Path) -> None:
    settings = _settings_from(tmp_path, PER_MODEL_TOML)
    for near in ("Wine", "wine2", "win", "wine "):
        assert project_policy(settings, near).source.endswith("[gates]")
    later = project_policy(settings, "not-registered-yet")  # applies once registered
    assert [rule.text for rule in later.rules] == ["metrics.f1 >= 0.5"]


def test_a_model_table_alone_leaves_other_models_without_gates(tmp_path: Path) -> None:
    settings = _settings_from(tmp_path, '[gates.wine]\nrules = ["metrics.accuracy >= 0.8"]\n')
    assert project_policy(settings, "churn").rules == ()
    assert len(project_policy(settings, "wine").rules) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a name that is not a model name: quoted, since TOML refuses a bare space
        ('[gates."bad name"]\nrules = []\n', "'bad name' is not a model name"),
        ('[gates."../x"]\nrules = []\n', "'../x' is not a model name"),
        ('[gates."a/b"]\nrules = []\n', "'a/b' is not a model name"),
        # a scalar beside the policy keys is a typo, not a model
        ("[gates]\nrule = ['metrics.auc > 1']\n", "unknown key 'rule'; expected rules"),
        ("[gates]\nwine = 3\n", "unknown key 'wine'"),
        # unknown keys and wrong types inside a model table name the table
        ("[gates.wine]\nrulez = []\n", r"\[gates\.wine\] in .*unknown key 'rulez'"),
        (
            "[gates.wine]\nrules = 'metrics.auc > 1'\n",
            r"\[gates\.wine\] in .*'rules' must be a list",
        ),
        ("[gates.wine]\nrules = [1.5]\n", r"\[gates\.wine\] in .*rules\[0\] must be a string"),
        ("[gates.wine]\nrequire_approval = 'yes'\n", r"\[gates\.wine\] in .*true or false"),
        ("[gates.wine]\nrules = ['metrics.auc >= nan']\n", r"\[gates\.wine\] in .*rules\[0\]"),
        ("[gates.wine.evaluation]\ndata = 3\n", r"\[gates\.wine\] in .*'data' must be a non-empty"),
        (
            "[gates.wine.evaluation]\ncolumns = ['a']\n",
            r"\[gates\.wine\] in .*unknown key 'columns'",
        ),
        ("[gates.wine.other]\nrules = []\n", r"\[gates\.wine\] in .*unknown key 'other'"),
        ("[gates.wine]\nevaluation = 'wine@1'\n", r"\[gates\.wine\] in .*must be a mapping"),
    ],
)
def test_bad_model_tables_are_errors_for_every_model(
    tmp_path: Path, text: str, message: str
) -> None:
    settings = _settings_from(tmp_path, text)
    for model in ("churn", "wine", None):  # checked whichever model is gated
        with pytest.raises(InvalidInput, match=message):
            project_policy(settings, model)


def test_the_gates_section_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="must be a table"):
        _settings_from(tmp_path, "gates = ['metrics.auc > 1']\n")
    with pytest.raises(InvalidInput, match=r"must be a mapping \(a table\), got a list"):
        policy_from_toml(["x.y > 1"])  # type: ignore[arg-type]
