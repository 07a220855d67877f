"""Promotion policies: the gate rules a model version must pass, and whether it needs approval.

A policy comes from a YAML file or from the `[gates]` section of `loopline.toml`:

    rules:                               [gates]
      - metrics.roc_auc >= 0.90          rules = ["metrics.roc_auc >= 0.90",
      - slices.min.roc_auc >= 0.85                "slices.min.roc_auc >= 0.85"]
    require_approval: true               require_approval = true
    approval_stage: production           approval_stage = "production"
    evaluation:                          [gates.evaluation]
      data: credit@latest                data = "credit@latest"
      target: default                    target = "default"
      slices: [segment]                  slices = ["segment"]
      sensitive: [sex]                   sensitive = ["sex"]

Every key is optional; an empty `rules` list means no gates. `evaluation` holds the defaults
for the evaluation the rules are checked against. The rule grammar is described in
`loopline.promotion._rules`.

In `loopline.toml`, `[gates.MODEL]` (with its own `[gates.MODEL.evaluation]`) is the whole
policy of the registered model named exactly MODEL; `[gates]` is the policy of every model
without a table of its own. A model's table replaces `[gates]`, it does not merge with it:
one model's evaluation data is rarely another's. A table for a model not registered yet is
kept for when it is. `rules`, `require_approval`, `approval_stage` and `evaluation` are
`[gates]` keys, so models with those names can only use `[gates]` or a YAML policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, NotFound
from loopline.promotion._rules import Rule, RuleResult, evaluate_rules, parse_rule
from loopline.store import check_model_name

if TYPE_CHECKING:
    from loopline.config import Settings

_KEYS = ("rules", "require_approval", "approval_stage", "evaluation")
_EVALUATION_KEYS = {"data": str, "target": str, "slices": list, "sensitive": list}


@dataclass(frozen=True)
class Policy:
    """Gate rules, and whether a version needs an approval to reach `approval_stage`.

    `source` says where the policy came from (a file path or `loopline.toml [gates]`), for
    messages and the audit trail. `evaluation` holds defaults for the evaluation the rules
    are checked against: `data` (a dataset ref), `target`, `slices` and `sensitive` columns.
    """

    rules: tuple[Rule, ...]
    require_approval: bool = False
    approval_stage: str = "production"
    source: str = "(inline)"
    evaluation: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        if not all(isinstance(rule, Rule) for rule in rules):
            raise InvalidInput("Policy.rules must hold Rule objects; parse text with parse_rule")
        if not isinstance(self.require_approval, bool):
            raise InvalidInput(f"require_approval must be true or false: {self.require_approval!r}")
        if not isinstance(self.approval_stage, str) or not self.approval_stage.strip():
            raise InvalidInput(f"approval_stage must be a stage name: {self.approval_stage!r}")
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "evaluation", _evaluation(self.evaluation, "Policy.evaluation"))

    def evaluate(self, facts: Mapping[str, Any]) -> list[RuleResult]:
        """Check every rule against the evaluation facts (see `evaluate_rules`)."""
        return evaluate_rules(self.rules, facts)

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready data; without `source` it is a valid policy mapping."""
        return {
            "rules": [rule.text for rule in self.rules],
            "require_approval": self.require_approval,
            "approval_stage": self.approval_stage,
            "evaluation": dict(self.evaluation),
            "source": self.source,
        }


def load_policy(path: str | Path) -> Policy:
    """Read a policy YAML file; errors name the file (and the rule index for bad rules)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"no gate policy file at {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read gate policy {path}: {exc}") from exc
    return policy_from_yaml(text, source=str(path))


def policy_from_yaml(text: str, *, source: str = "(inline)") -> Policy:
    """Parse a policy from YAML text; `source` names it in errors."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise InvalidInput(f"gate policy {source} is not valid YAML: {problem}{where}") from exc
    if doc is None:
        raise InvalidInput(
            f"gate policy {source} is empty", hint="write 'rules: []' for a policy without gates"
        )
    return _policy_from_mapping(doc, f"gate policy {source}", source)


def policy_from_toml(
    section: Mapping[str, Any], *, source: str = "loopline.toml", model: str | None = None
) -> Policy:
    """The policy of `model` in the `[gates]` section of `loopline.toml`: its own
    `[gates.MODEL]` table if there is one, `[gates]` otherwise (an empty section: no gates).

    Every model table is checked, whichever model is asked for, so that a typo fails the
    first gate check and not the day that model is promoted.
    """
    if not isinstance(section, Mapping):
        raise InvalidInput(f"[gates] in {source} must be a mapping (a table), got {_kind(section)}")
    defaults = {key: value for key, value in section.items() if key in _KEYS}
    default = _policy_from_mapping(defaults, f"[gates] in {source}", f"{source} [gates]")
    policies = {
        name: _policy_from_mapping(table, f"[gates.{name}] in {source}", f"{source} [gates.{name}]")
        for name, table in _model_tables(section, source).items()
    }
    return default if model is None else policies.get(model, default)


def project_policy(settings: Settings, model: str | None = None) -> Policy:
    """The project's policy for `model`: `[gates.MODEL]` of its `loopline.toml`, else
    `[gates]` (neither: no gates)."""
    return policy_from_toml(
        settings.gates, source=str(settings.root / "loopline.toml"), model=model
    )


def _model_tables(section: Mapping[str, Any], source: str) -> dict[str, Mapping[str, Any]]:
    """The `[gates.MODEL]` tables; any other key beside the policy keys is an error."""
    tables: dict[str, Mapping[str, Any]] = {}
    for key, value in section.items():
        if key in _KEYS:
            continue
        if not isinstance(value, Mapping):
            expected = ", ".join(_KEYS)
            raise InvalidInput(
                f"[gates] in {source} has unknown key {str(key)!r}; expected {expected}, "
                "or a [gates.MODEL] table"
            )
        try:
            check_model_name(key)
        except InvalidInput as exc:
            raise InvalidInput(
                f"[gates] in {source}: {str(key)!r} is not a model name, so "
                f"[gates.{key}] can apply to no model",
                hint=exc.hint,
            ) from exc
        tables[key] = value
    return tables


def _policy_from_mapping(doc: object, where: str, source: str) -> Policy:
    """Check keys and types strictly; `where` starts every error message."""
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"{where} must be a mapping with 'rules', got {_kind(doc)}")
    unknown = [str(key) for key in doc if key not in _KEYS]
    if unknown:
        expected = ", ".join(_KEYS)
        raise InvalidInput(f"{where} has unknown key {unknown[0]!r}; expected {expected}")
    texts = doc.get("rules")
    if texts is None:
        texts = []
    if not isinstance(texts, list):
        example = "a list of rules such as ['metrics.roc_auc >= 0.9']"
        raise InvalidInput(f"{where}: 'rules' must be {example}, got {_kind(texts)}")
    rules = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{where}: rules[{index}] must be a string, got {_kind(text)}")
        try:
            rules.append(parse_rule(text))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: rules[{index}]: {exc.message}", hint=exc.hint) from exc
    approval = doc.get("require_approval", False)
    if not isinstance(approval, bool):
        raise InvalidInput(f"{where}: 'require_approval' must be true or false, got {approval!r}")
    stage = doc.get("approval_stage", "production")
    if not isinstance(stage, str) or not stage.strip():
        raise InvalidInput(f"{where}: 'approval_stage' must be a stage name, got {stage!r}")
    evaluation = _evaluation(doc.get("evaluation") or {}, f"{where}: 'evaluation'")
    return Policy(tuple(rules), approval, stage, source, evaluation)


def _evaluation(section: object, where: str) -> dict[str, Any]:
    """The evaluation defaults, checked: strings for data/target, string lists for columns."""
    if not isinstance(section, Mapping):
        raise InvalidInput(f"{where} must be a mapping, got {_kind(section)}")
    checked: dict[str, Any] = {}
    for key, value in section.items():
        kind = _EVALUATION_KEYS.get(key)
        if kind is None:
            expected = ", ".join(_EVALUATION_KEYS)
            raise InvalidInput(f"{where} has unknown key {str(key)!r}; expected {expected}")
        if value is None:
            continue
        if kind is str and (not isinstance(value, str) or not value.strip()):
            raise InvalidInput(f"{where}: {key!r} must be a non-empty string, got {_kind(value)}")
        if kind is list:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidInput(f"{where}: {key!r} must be a list of column names")
            value = list(value)
        checked[key] = value
    return checked


def _kind(value: object) -> str:
    """A value's type in the words of YAML/TOML users."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), type(value).__name__)
