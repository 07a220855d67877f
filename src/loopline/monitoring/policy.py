"""Monitoring policies: what to watch on a deployment, when a check fails, and what to do.

A policy is a `[monitor.DEPLOYMENT]` table of `loopline.toml`, or a YAML file with the same
keys (plus an optional `deployment:`). Every key is optional:

    [monitor.credit]                 # the deployment named credit
    window = "1h"                    # the log window each run reads (90s, 10m, 1h, 2d, 1w)
    every = "10m"                    # how often `loopline monitor watch` runs it
    min_rows = 500                   # fewer rows in the window: the run is skipped
    reference = "training"           # the model's training data, or a dataset NAME@VERSION
    segments = ["region"]            # columns whose values get tables of their own
    exact_max_rows = 5000000         # windows up to this many rows are read exactly
    cooldown = "1h"                  # an open alert is re-sent at most this often

    [monitor.credit.thresholds]      # when a check fails (unset: the checks' own defaults)
    psi = 0.2                        # drift: psi, wasserstein, js (0-1), p_value (0-1),
    null_rate = 0.05                 #   unseen_share (0-1); integrity: null_rate,
    max_metric_drop = 0.05           #   out_of_range (shares, 0-1); performance:
    drifted_features = 1             #   max_metric_drop; drifted features that fail drift

    [monitor.credit.features.age]    # one feature's own drift and integrity thresholds
    psi = 0.3

    [[monitor.credit.actions]]       # what a failed check does, in order
    when = "drift"                   # drift | integrity | performance | canary | any
    do = "alert"                     # alert | rollback | retrain
    webhook = "${SLACK_WEBHOOK}"     # alert to ONE of: webhook, log = true, file = "a.jsonl"
    allow_hosts = ["10.0.0.7"]       # webhook hosts/addresses allowed though not public

    [[monitor.credit.actions]]
    when = "performance"
    do = "retrain"
    train = "mypkg.train:fit"        # fit(data, target, params) -> model; or command = "..."
    target = "default"               # the label column of the training set
    params = { C = 1.0 }             # passed to the training callable
    canary_weight = 0.1              # the new version's share of traffic (0 < w < 1)
    judge_min_rows = 500             # labelled canary rows before it is judged,
    judge_after = "2h"               # or this long (unset: wait for the rows)

Defaults: window 1h, every 10m, min_rows 100, reference training, exact_max_rows 5,000,000,
cooldown 1h, no actions. A threshold left out is None: the check's own default applies.
A webhook URL may hold `${VARIABLE}`s, expanded when the alert is sent; it is never shown
whole (see `loopline.monitoring._webhook` for its SSRF defences). An alert `file` is a path
inside the project, never in `.git` or `.loopline`, never through a symbolic link. A
`train` callable is checked by its shape here, and imported only when a retrain runs.

Mistakes raise InvalidInput naming where they are: `[monitor.credit.thresholds] psi: ...`
in loopline.toml, `policy.yaml line 7 (thresholds.psi): ...` in a YAML file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, NotFound
from loopline.monitoring import _policy_parse as check
from loopline.monitoring._policy_parse import (
    ACTION_KINDS,
    FEATURE_THRESHOLDS,
    GLOBAL_THRESHOLDS,
    POLICY_KEYS,
    TRIGGERS,
    KeyPath,
    Locate,
)

if TYPE_CHECKING:
    from loopline.config import Settings

CHECKS = ("drift", "integrity", "performance", "canary")


@dataclass(frozen=True)
class Thresholds:
    """When drift, integrity and performance checks fail; None means the check's default.

    The global thresholds of a policy carry each feature's overrides in `features`;
    `for_feature(name)` is what applies to one feature.
    """

    psi: float | None = None
    wasserstein: float | None = None
    js: float | None = None
    p_value: float | None = None
    unseen_share: float | None = None
    null_rate: float | None = None
    out_of_range: float | None = None
    max_metric_drop: float | None = None
    drifted_features: int = 1
    features: Mapping[str, Thresholds] = field(default_factory=dict, hash=False, repr=False)

    def __post_init__(self) -> None:
        locate: Locate = lambda path: f"Thresholds.{path[-1]}"  # noqa: E731
        for name in GLOBAL_THRESHOLDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check.threshold(name, value, locate, (name,)))
        if not isinstance(self.features, Mapping):
            raise InvalidInput("Thresholds.features must map feature names to Thresholds")
        for name, override in self.features.items():
            if not isinstance(name, str) or not isinstance(override, Thresholds):
                raise InvalidInput("Thresholds.features must map feature names to Thresholds")
        object.__setattr__(self, "features", dict(self.features))

    def for_feature(self, name: str) -> Thresholds:
        """The thresholds for feature `name`: its overrides where set, the global ones
        elsewhere (a feature without overrides gets the global ones)."""
        if not isinstance(name, str):
            raise InvalidInput(f"a feature name is text, got {type(name).__name__}")
        override = self.features.get(name)
        merged = dataclasses.replace(self, features={})
        if override is None:
            return merged
        changes = {
            key: getattr(override, key)
            for key in FEATURE_THRESHOLDS
            if getattr(override, key) is not None
        }
        return dataclasses.replace(merged, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds that are set, as JSON-ready data (features under `features`)."""
        data: dict[str, Any] = {
            name: getattr(self, name)
            for name in GLOBAL_THRESHOLDS
            if getattr(self, name) is not None
        }
        if self.features:
            data["features"] = {
                name: {
                    key: getattr(override, key)
                    for key in FEATURE_THRESHOLDS
                    if getattr(override, key) is not None
                }
                for name, override in self.features.items()
            }
        return data


@dataclass(frozen=True)
class Action:
    """What a failed check does: `kind` alert, rollback or retrain, `when` which check
    (drift, integrity, performance, canary, or any).

    An alert goes to exactly one of `webhook` (a URL, possibly with `${VARIABLE}`s; kept
    out of repr), `log` or `file`; `allow_hosts` lets a webhook reach listed non-public
    hosts. A retrain runs `train` (`module:function`) or `command`, on `target`, with
    `params`, and deploys the result as a canary at `canary_weight`, judged after
    `judge_min_rows` labelled rows or `judge_after`.
    """

    kind: str
    when: str = "any"
    webhook: str | None = field(default=None, repr=False)
    log: bool = False
    file: str | None = None
    allow_hosts: tuple[str, ...] = ()
    train: str | None = None
    command: str | None = None
    target: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    canary_weight: float = 0.1
    judge_min_rows: int = 500
    judge_after: timedelta | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise InvalidInput(
                f"an action's kind is one of {', '.join(ACTION_KINDS)}: {self.kind!r}"
            )
        if self.when not in TRIGGERS:
            raise InvalidInput(f"an action's 'when' is one of {', '.join(TRIGGERS)}: {self.when!r}")
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        object.__setattr__(self, "params", dict(self.params))
        if self.kind == "alert":
            targets = [self.webhook is not None, self.log, self.file is not None]
            if sum(targets) != 1:
                raise InvalidInput(
                    "an alert action needs exactly one of webhook, log = true or file"
                    + (f" (it has {sum(targets)})" if sum(targets) else ""),
                    hint="write one action per target to alert several",
                )
        if self.allow_hosts and self.webhook is None:
            raise InvalidInput("allow_hosts applies to a webhook; this action has none")
        if self.kind == "retrain":
            if (self.train is None) == (self.command is None):
                raise InvalidInput(
                    "a retrain action needs either train = 'module:function' or command = "
                    "'...', " + ("not both" if self.train else "and has neither")
                )
            if self.target is None:
                raise InvalidInput("a retrain action needs target, the label column")

    def triggered_by(self, failed_check: str) -> bool:
        """Whether a failed `failed_check` (drift, integrity, ...) sets off this action."""
        return self.when == "any" or self.when == failed_check

    @property
    def destination(self) -> str:
        """Where an alert goes, fit to show: `scheme://host` of a webhook, `log`, or the
        file; empty for other actions."""
        if self.webhook is not None:
            from loopline.monitoring._webhook import redacted

            return redacted(self.webhook)
        if self.log:
            return "log"
        return self.file or ""

    def to_dict(self) -> dict[str, Any]:
        """The action as JSON-ready data, the webhook shown as `scheme://host` only."""
        data: dict[str, Any] = {"do": self.kind, "when": self.when}
        if self.kind == "alert":
            data["to"] = self.destination
            if self.allow_hosts:
                data["allow_hosts"] = list(self.allow_hosts)
        elif self.kind == "retrain":
            data.update(
                train=self.train,
                command=self.command,
                target=self.target,
                params=dict(self.params),
                canary_weight=self.canary_weight,
                judge_min_rows=self.judge_min_rows,
                judge_after=None if self.judge_after is None else self.judge_after.total_seconds(),
            )
        return data


@dataclass(frozen=True)
class MonitorPolicy:
    """Everything `loopline monitor` needs to watch one deployment (see the module doc).

    `source` says where it came from (`loopline.toml [monitor.credit]`, a file path, or
    `default`). `feature_thresholds` are the per-feature overrides, also reachable from
    `thresholds.for_feature(name)` and `policy.for_feature(name)`.
    """

    deployment: str
    window: timedelta = timedelta(hours=1)
    every: timedelta = timedelta(minutes=10)
    min_rows: int = 100
    reference: str = "training"
    segments: tuple[str, ...] = ()
    exact_max_rows: int = 5_000_000
    cooldown: timedelta = timedelta(hours=1)
    thresholds: Thresholds = field(default_factory=Thresholds)
    feature_thresholds: Mapping[str, Thresholds] = field(default_factory=dict, hash=False)
    actions: tuple[Action, ...] = ()
    source: str = "default"

    def __post_init__(self) -> None:
        from loopline.store.deployments import check_deployment_name

        check_deployment_name(self.deployment)
        for name in ("window", "every", "cooldown"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise InvalidInput(f"MonitorPolicy.{name} must be a timedelta >= 0, got {value!r}")
        if not isinstance(self.thresholds, Thresholds):
            raise InvalidInput("MonitorPolicy.thresholds must be a Thresholds")
        actions = tuple(self.actions)
        if not all(isinstance(action, Action) for action in actions):
            raise InvalidInput("MonitorPolicy.actions must hold Action objects")
        features = dict(self.feature_thresholds) or dict(self.thresholds.features)
        object.__setattr__(
            self, "thresholds", dataclasses.replace(self.thresholds, features=features)
        )
        object.__setattr__(self, "feature_thresholds", features)
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "actions", actions)

    def for_feature(self, name: str) -> Thresholds:
        """The thresholds that apply to feature `name` (see `Thresholds.for_feature`)."""
        return self.thresholds.for_feature(name)

    def actions_for(self, failed_check: str) -> tuple[Action, ...]:
        """The actions a failed `failed_check` sets off, in the policy's order."""
        if failed_check not in CHECKS:
            raise InvalidInput(
                f"unknown check {failed_check!r}; expected one of {', '.join(CHECKS)}"
            )
        return tuple(action for action in self.actions if action.triggered_by(failed_check))

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready data (durations in seconds, webhooks redacted)."""
        return {
            "deployment": self.deployment,
            "window": self.window.total_seconds(),
            "every": self.every.total_seconds(),
            "min_rows": self.min_rows,
            "reference": self.reference,
            "segments": list(self.segments),
            "exact_max_rows": self.exact_max_rows,
            "cooldown": self.cooldown.total_seconds(),
            "thresholds": self.thresholds.to_dict(),
            "actions": [action.to_dict() for action in self.actions],
            "source": self.source,
        }


def load_policy(
    path: str | Path, *, deployment: str | None = None, project_root: str | Path | None = None
) -> MonitorPolicy:
    """Read a policy YAML file.

    The deployment is the file's `deployment:` key, else `deployment`; when both are
    given they must agree. With `project_root`, an alert `file` is also checked against
    the project's folders (no symbolic link on the way).

    Raises:
        NotFound: no file at `path`.
        InvalidInput: the file cannot be read, or any key is wrong (the message names
            the line), or no deployment is named.
    """
    from loopline.monitoring._policy_yaml import load_yaml

    if not isinstance(path, str | Path):
        raise InvalidInput(f"a policy path is text or a Path, got {type(path).__name__}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no monitoring policy file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the monitoring policy {path}: {exc}") from None
    doc, lines = load_yaml(text, str(path))
    locate = check.yaml_locator(str(path), lines)
    if not isinstance(doc, Mapping):
        raise check.fail(
            locate, (), f"a policy file is a mapping of keys, got {check.kind_of(doc)}"
        )
    doc = dict(doc)
    named = doc.pop("deployment", None)
    if named is not None:
        named = check.text(named, locate, ("deployment",), "a deployment name")
        _check_name(named, locate, ("deployment",))
        if deployment is not None and named != deployment:
            raise check.fail(
                locate,
                ("deployment",),
                f"the file is the policy of {named!r}, not of {deployment!r}",
            )
    name = named or deployment
    if name is None:
        raise InvalidInput(f"{path} names no deployment", hint="add 'deployment: NAME' to the file")
    _check_name(name, locate, ("deployment",))
    return _policy(name, doc, locate, str(path), project_root)


def policies_from_settings(settings: Settings) -> dict[str, MonitorPolicy]:
    """Every `[monitor.DEPLOYMENT]` policy of the project's loopline.toml, by deployment.

    Every table is checked, so a mistake in one deployment's policy fails any call.
    Raises InvalidInput naming the table and key of the first mistake.
    """
    section = settings.monitor
    if not isinstance(section, Mapping):
        raise InvalidInput(f"[monitor] must be a table, got {check.kind_of(section)}")
    policies: dict[str, MonitorPolicy] = {}
    for name, table in section.items():
        locate = check.toml_locator(str(name))
        if not isinstance(table, Mapping):
            raise InvalidInput(
                f"[monitor] {name}: expected a [monitor.DEPLOYMENT] table, got "
                f"{check.kind_of(table)}",
                hint="write the policy of deployment NAME under [monitor.NAME]",
            )
        _check_name(str(name), locate, ())
        source = f"loopline.toml [monitor.{name}]"
        policies[str(name)] = _policy(str(name), table, locate, source, settings.root)
    return policies


def policy_for(
    deployment: str, settings: Settings, path: str | Path | None = None
) -> MonitorPolicy:
    """The policy of `deployment`: the YAML file at `path` when given, else its
    `[monitor.DEPLOYMENT]` table in loopline.toml, else `default_policy(deployment)`."""
    if path is not None:
        return load_policy(path, deployment=deployment, project_root=settings.root)
    from loopline.store.deployments import check_deployment_name

    check_deployment_name(deployment)
    policies = policies_from_settings(settings)
    return policies.get(deployment) or default_policy(deployment)


def default_policy(deployment: str) -> MonitorPolicy:
    """The policy of a deployment without one: window 1h, every 10m, min_rows 100,
    reference training, the checks' default thresholds, no actions."""
    return MonitorPolicy(deployment=deployment)


def _check_name(name: str, locate: Locate, path: KeyPath) -> None:
    from loopline.store.deployments import check_deployment_name

    try:
        check_deployment_name(name)
    except InvalidInput as exc:
        raise check.fail(locate, path, exc.message, hint=exc.hint) from None


def _policy(
    deployment: str,
    doc: Mapping[str, Any],
    locate: Locate,
    source: str,
    project_root: str | Path | None,
) -> MonitorPolicy:
    """A MonitorPolicy from one policy mapping, every key checked where it stands."""
    table = check.check_keys(doc, POLICY_KEYS, locate, ())
    values: dict[str, Any] = {}
    for key in ("window", "every"):
        if key in table:
            values[key] = check.duration(table[key], locate, (key,))
    if "cooldown" in table:
        values["cooldown"] = check.duration(table["cooldown"], locate, ("cooldown",), zero=True)
    if "min_rows" in table:
        values["min_rows"] = check.whole_number(table["min_rows"], locate, ("min_rows",), minimum=0)
    if "exact_max_rows" in table:
        values["exact_max_rows"] = check.whole_number(
            table["exact_max_rows"], locate, ("exact_max_rows",), minimum=1
        )
    if "reference" in table:
        values["reference"] = check.reference(table["reference"], locate, ("reference",))
    if "segments" in table:
        values["segments"] = check.names(table["segments"], locate, ("segments",), "column names")
    values["thresholds"] = Thresholds(
        **check.thresholds(table.get("thresholds", {}), GLOBAL_THRESHOLDS, locate, ("thresholds",))
    )
    values["feature_thresholds"] = _feature_thresholds(table.get("features", {}), locate)
    values["actions"] = _actions(table.get("actions", []), locate, project_root)
    return MonitorPolicy(deployment=deployment, source=source, **values)


def _feature_thresholds(doc: object, locate: Locate) -> dict[str, Thresholds]:
    if not isinstance(doc, Mapping):
        raise check.fail(
            locate, ("features",), f"expected a table of features, got {check.kind_of(doc)}"
        )
    overrides: dict[str, Thresholds] = {}
    for name, table in doc.items():
        path: KeyPath = ("features", str(name))
        if not isinstance(name, str) or not name:
            raise check.fail(locate, path, "a feature name is non-empty text")
        overrides[name] = Thresholds(
            **check.thresholds(table, tuple(FEATURE_THRESHOLDS), locate, path)
        )
    return overrides


def _actions(doc: object, locate: Locate, project_root: str | Path | None) -> tuple[Action, ...]:
    if not isinstance(doc, list | tuple):
        raise check.fail(
            locate,
            ("actions",),
            "expected a list of actions ([[monitor.NAME.actions]] tables), "
            f"got {check.kind_of(doc)}",
        )
    actions = []
    for index, item in enumerate(doc):
        path: KeyPath = ("actions", index)
        fields = check.action_fields(item, locate, path, project_root)
        try:
            actions.append(Action(**fields))
        except InvalidInput as exc:
            raise check.fail(locate, path, exc.message, hint=exc.hint) from None
    return tuple(actions)
