"""Promotion: policies, gates, approvals."""

from loopline.promotion._rules import Rule, RuleResult, evaluate_rules, parse_rule
from loopline.promotion.gates import GateReport, check_gates
from loopline.promotion.policy import (
    Policy,
    load_policy,
    policy_from_toml,
    policy_from_yaml,
    project_policy,
)
from loopline.promotion.promote import Promotion, approve, promote
from loopline.promotion.reviews import list_approvals, list_gate_checks

__all__ = [
    "GateReport",
    "Policy",
    "Promotion",
    "Rule",
    "RuleResult",
    "approve",
    "check_gates",
    "evaluate_rules",
    "list_approvals",
    "list_gate_checks",
    "load_policy",
    "parse_rule",
    "policy_from_toml",
    "policy_from_yaml",
    "project_policy",
    "promote",
]
