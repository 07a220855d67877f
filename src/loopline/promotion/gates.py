"""Gates: a policy's rules judged against a model version's evaluation.

The facts the rules address are the evaluation report (metrics, slices, fairness,
calibration, robustness, latency, size), plus `compare.<alias>.<metric>`: the
candidate's metric minus the aliased version's on the same data, e.g.
`compare.champion.roc_auc >= -0.005`. Gates fail closed: a rule whose value is missing
fails. When the alias names no version yet (the first champion), its comparisons pass
and say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loopline.config import current_user
from loopline.errors import InvalidInput, NotFound
from loopline.evaluation import Evaluation, config_hash, evaluate, latest_evaluation
from loopline.packaging import check_trusted
from loopline.project import Stores, stores
from loopline.promotion._rules import RuleResult, evaluate_rules
from loopline.promotion.policy import Policy, project_policy
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import DatasetVersion, GateCheck


@dataclass(frozen=True)
class GateReport:
    """The outcome of a policy's rules for one version."""

    version: ModelVersion
    passed: bool
    results: list[RuleResult]
    evaluation: Evaluation | None
    check: GateCheck | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[RuleResult]:
        return [result for result in self.results if not result.passed]


def check_gates(
    ref: str | ModelRef | ModelVersion,
    *,
    policy: Policy | None = None,
    data: str | None = None,
    target: str | None = None,
    slices: Sequence[str] | None = None,
    sensitive: Sequence[str] | None = None,
    record: bool = True,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
    opened: Stores | None = None,
) -> GateReport:
    """Judge a version against a policy (default: the project's `[gates.MODEL]` for the
    version's model, else its `[gates]`).

    The evaluation comes from `data`/`target` (or the policy's `evaluation` section):
    reused when one with the same data and configuration is stored, run otherwise.
    Without either, the version's latest stored evaluation is used. Versions evaluated
    here load as `load` loads them (`trusted` adds to their recorded types; `allow_pickle`).

    Example:
        report = check_gates("churn/4")
        report.passed, [r.reason for r in report.failures]
    """
    opened = opened or stores()
    version = resolve(ref, opened=opened)
    policy = policy or project_policy(opened.settings, version.model)
    notes: list[str] = []
    evaluation = None
    if policy.rules:
        setup = _setup(policy, data, target, slices, sensitive)
        setup = replace(setup, trusted=check_trusted(trusted), allow_pickle=allow_pickle)
        evaluation = _evaluation(version, setup, opened)
        facts: dict[str, Any] = dict(evaluation.report) if evaluation is not None else {}
        facts["compare"], missing = _comparisons(version, policy, evaluation, setup, opened, notes)
        results = [
            _nothing_to_compare(result) if _is_comparison(rule.path, missing) else result
            for rule, result in zip(policy.rules, evaluate_rules(policy.rules, facts), strict=True)
        ]
    else:
        results = []
        notes.append("the policy has no rules")
    passed = all(result.passed for result in results)
    check = None
    if record:
        check = opened.metadata.reviews.add_gate_check(
            version.id,
            evaluation_id=None if evaluation is None else evaluation.record.id,
            policy=policy.to_dict(),
            passed=passed,
            results=[_result_dict(result) for result in results],
            created_by=current_user(),
        )
    return GateReport(version, passed, results, evaluation, check, notes)


@dataclass(frozen=True)
class _Setup:
    data: str | None
    target: str | None
    slices: list[str]
    sensitive: list[str]
    trusted: list[str] = field(default_factory=list)  # to load the versions evaluated here
    allow_pickle: bool = False


def _setup(
    policy: Policy,
    data: str | None,
    target: str | None,
    slices: Sequence[str] | None,
    sensitive: Sequence[str] | None,
) -> _Setup:
    defaults = policy.evaluation
    return _Setup(
        data=data or defaults.get("data"),
        target=target or defaults.get("target"),
        slices=list(slices if slices is not None else defaults.get("slices", [])),
        sensitive=list(sensitive if sensitive is not None else defaults.get("sensitive", [])),
    )


def _evaluation(version: ModelVersion, setup: _Setup, opened: Stores) -> Evaluation | None:
    if setup.data is None:
        return latest_evaluation(version, opened=opened)
    if setup.target is None:
        raise InvalidInput(
            "gates need the target column to evaluate on "
            f"{setup.data!r}: pass target= or set it in the policy's evaluation section"
        )
    from loopline import data as datasets

    dataset = datasets.resolve(setup.data)
    wanted = config_hash(setup.target, setup.slices, setup.sensitive, None)
    stored = latest_evaluation(version, dataset_version_id=dataset.id, config=wanted, opened=opened)
    if stored is not None:
        return stored
    _check_columns(version, dataset, setup)
    try:
        return evaluate(
            version,
            dataset.ref,
            target=setup.target,
            slices=setup.slices,
            sensitive=setup.sensitive,
            trusted=setup.trusted,
            allow_pickle=setup.allow_pickle,
            opened=opened,
        )
    except InvalidInput as exc:  # name the data: the policy may be another model's
        raise InvalidInput(
            f"gate dataset {dataset.ref!r}, model {version.model!r}: {exc.message}",
            hint=exc.hint or _WHICH_POLICY,
        ) from exc


_WHICH_POLICY = (
    "gates evaluate on [gates.evaluation] of loopline.toml; give this model "
    "its own [gates.MODEL] table (with [gates.MODEL.evaluation]) or pass --data"
)


def _check_columns(version: ModelVersion, dataset: DatasetVersion, setup: _Setup) -> None:
    """Before loading anything: every column the model and the policy need is in the data
    (known from the version's profile; data without one is checked by the evaluation)."""
    if not dataset.schema_json:
        return
    present = {str(column.get("name")) for column in json.loads(dataset.schema_json)}
    inputs = [str(column.get("name")) for column in version.signature.get("inputs") or ()]
    for name in inputs:
        if name not in present:
            raise InvalidInput(
                f"gate dataset {dataset.ref!r} has no column {name!r} that model "
                f"{version.model!r} needs",
                hint=_WHICH_POLICY,
            )
    needed = [(setup.target or "", "target"), *((c, "sensitive") for c in setup.sensitive)]
    for name, role in needed:
        if name not in present:
            raise InvalidInput(
                f"gate dataset {dataset.ref!r} has no {role} column {name!r} "
                f"(gating model {version.model!r})",
                hint=_WHICH_POLICY,
            )


def _comparisons(
    version: ModelVersion,
    policy: Policy,
    evaluation: Evaluation | None,
    setup: _Setup,
    opened: Stores,
    notes: list[str],
) -> tuple[dict[str, Any], set[str]]:
    """compare.<alias>.<metric>: candidate minus the aliased version, on the same data;
    and the aliases that name no version yet."""
    aliases = sorted({rule.path[1] for rule in policy.rules if _is_comparison(rule.path)})
    deltas: dict[str, Any] = {}
    missing: set[str] = set()
    for alias in aliases:
        try:
            reference = opened.metadata.models.version_for_alias(version.model, alias)
        except NotFound:
            missing.add(alias)
            notes.append(f"{version.model}@{alias} does not exist yet: nothing to compare with")
            continue
        if evaluation is None:
            continue  # the rule fails: no evaluation of the candidate
        if reference.id == version.id:
            theirs = evaluation
        else:
            data = evaluation.record.data_ref
            if evaluation.record.dataset_version_id is None:
                raise InvalidInput(
                    f"comparing with {alias} needs the candidate evaluated on a dataset "
                    "version, not a DataFrame"
                )
            stored = latest_evaluation(
                reference,
                dataset_version_id=evaluation.record.dataset_version_id,
                config=evaluation.record.config_hash,
                opened=opened,
            )
            theirs = stored or evaluate(
                reference,
                data,
                target=evaluation.record.target,
                slices=setup.slices,
                sensitive=setup.sensitive,
                trusted=setup.trusted,
                allow_pickle=setup.allow_pickle,
                opened=opened,
            )
        deltas[alias] = {
            key: value - theirs.metrics[key]
            for key, value in evaluation.metrics.items()
            if _number(value) and _number(theirs.metrics.get(key))
        }
        notes.append(f"compared with {reference.ref} ({alias}) on {evaluation.record.data_ref}")
    return deltas, missing


def _nothing_to_compare(result: RuleResult) -> RuleResult:
    """A comparison with an alias that names no version yet passes, saying why."""
    return RuleResult(
        rule=result.rule,
        passed=True,
        actual=None,
        threshold=result.threshold,
        op=result.op,
        reason="no version holds that alias yet: nothing to compare with",
    )


def _is_comparison(path: tuple[str, ...], aliases: set[str] | None = None) -> bool:
    if len(path) < 3 or path[0] != "compare":
        return False
    return aliases is None or path[1] in aliases


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _result_dict(result: RuleResult) -> dict[str, Any]:
    return result.to_dict()
