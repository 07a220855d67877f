"""The retrain loop: a new training set from production, a tracked training run, gates on
a fresh hold-out, a canary; the watcher later promotes the canary or rolls it back.

`run_loop(deployment)` does it once, end to end up to the canary:
1. the labelled production rows of the policy's window (model inputs + feedback label)
   are split by time: the newest 30 % are the hold-out, never trained on; the reference
   dataset version plus the older 70 % become a new version of `DEPLOYMENT-train`, made
   inside a run that reads both (its lineage names them);
2. the policy's `train` callable `module:function(data, target, params)` returns a
   fitted model (or its `command` runs with LOOPLINE_TRAIN_DATA naming the version and
   registers one itself), inside a tracked run that reads that version;
3. the candidate is registered as the next version of the champion's model, evaluated
   with the champion on the hold-out (`DEPLOYMENT-holdout`), and the promotion gates of
   the model are checked on it;
4. passing, it is deployed as a canary at the policy's weight; failing, nothing changes
   and the loop ends as refused.
`judge_canaries` (called by the watcher every cycle) compares a loop's canary with the
stable version over the labelled requests since the canary started: after
`judge_min_rows` labelled canary rows or `judge_after`, a canary that is significantly
worse is rolled back, any other is promoted (deployment and the policy's alias).

Each step is an audit event of object type `loop` (the loop's id), so `show_loop`
reads the whole chain back in order; a loop whose last event is not an end was
interrupted, and changed nothing past that step.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError, NotFound
from loopline.store.records import new_id

if TYPE_CHECKING:
    import pandas as pd

    from loopline.monitoring.policy import Action, MonitorPolicy
    from loopline.monitoring.report import MonitorReport
    from loopline.project import Stores
    from loopline.registry import ModelVersion

log = logging.getLogger(__name__)
HOLDOUT_SHARE = 0.3
MIN_TRAINING_LABELS = 20
ENDS = ("loop.canary_promoted", "loop.canary_rolled_back", "loop.refused", "loop.failed")
OBJECT = "loop"


@dataclass(frozen=True)
class LoopStep:
    action: str
    time: datetime
    actor: str
    detail: dict[str, Any]
    reason: str | None


@dataclass
class LoopRun:
    """One retrain loop: its steps in order and where it stands."""

    id: str
    deployment: str
    steps: list[LoopStep] = field(default_factory=list)

    @property
    def status(self) -> str:
        """started, canary, promoted, rolled_back, refused, failed (or interrupted: a loop
        that stopped before it reached an end, the last step is then not an end)."""
        if not self.steps:
            return "unknown"
        last = self.steps[-1].action
        return {
            "loop.canary_promoted": "promoted",
            "loop.canary_rolled_back": "rolled_back",
            "loop.refused": "refused",
            "loop.failed": "failed",
            "loop.canary": "canary",
        }.get(last, "started")

    def detail(self, action: str) -> dict[str, Any]:
        for step in self.steps:
            if step.action == action:
                return step.detail
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployment": self.deployment,
            "status": self.status,
            "steps": [
                {
                    "action": s.action,
                    "time": s.time.isoformat(),
                    "actor": s.actor,
                    "detail": s.detail,
                    "reason": s.reason,
                }
                for s in self.steps
            ],
        }


def run_loop(
    deployment: str,
    *,
    policy: MonitorPolicy | None = None,
    action: Action | None = None,
    trigger: dict[str, Any] | None = None,
    now: datetime | None = None,
    opened: Stores | None = None,
) -> LoopRun:
    """Retrain, gate and canary once for `deployment` (see the module docstring); the
    loop as it ended. A failure at any step (the training function raises, a gate
    refuses, too few labels) leaves the deployment as it was, and the loop says why."""
    from loopline.monitoring.policy import policy_for
    from loopline.project import Scope, bound, stores

    opened = opened or stores()
    policy = policy or policy_for(deployment, opened.settings)
    action = action or _retrain_action(policy)
    now = now or datetime.now(UTC)
    loop = LoopRun(new_id(), deployment)
    _step(
        opened,
        loop,
        "loop.started",
        {"deployment": deployment, "trigger": trigger or {"by": "command"}},
    )
    try:
        with bound(Scope(opened)):
            _run(loop, policy, action, now, opened)
    except (LooplineError, Exception) as exc:
        _step(
            opened,
            loop,
            "loop.failed",
            {"error": f"{type(exc).__name__}: {exc}"},
            "the deployment is unchanged",
        )
    return loop


def _retrain_action(policy: MonitorPolicy) -> Action:
    for action in policy.actions:
        if action.kind == "retrain":
            return action
    raise InvalidInput(
        f"the monitoring policy of {policy.deployment} has no retrain action",
        hint=f'add [[monitor.{policy.deployment}.actions]] with do = "retrain", train and target',
    )


def _run(
    loop: LoopRun, policy: MonitorPolicy, action: Action, now: datetime, opened: Stores
) -> None:
    from loopline.monitoring._reference import training_reference
    from loopline.registry import resolve
    from loopline.serving.deployments import get_deployment, update_deployment

    current = get_deployment(loop.deployment, opened=opened)
    champion = resolve(current.spec.model.model, opened=opened)
    reference = (
        training_reference(champion, opened) if policy.reference == "training" else policy.reference
    )
    target = str(action.target)
    train_ref, holdout_ref = _datasets(loop, champion, reference, target, policy, now, opened)
    candidate = _train(loop, champion, train_ref, target, action, opened)
    passed = _gates(loop, candidate, champion, holdout_ref, target, opened)
    if not passed:
        return
    weight = float(getattr(action, "canary_weight", None) or 0.1) * 100
    update_deployment(
        loop.deployment,
        canary=candidate.ref,
        weight=weight,
        reason=f"retrain loop {loop.id}: canary of {candidate.ref}",
        actor=_actor(),
    )
    _step(
        opened,
        loop,
        "loop.canary",
        {
            "candidate": candidate.ref,
            "champion": champion.ref,
            "weight": weight,
            "started": datetime.now(UTC).isoformat(),
        },
        f"{candidate.ref} answers {weight:g}% of requests",
    )


def _datasets(
    loop: LoopRun,
    champion: ModelVersion,
    reference: str,
    target: str,
    policy: MonitorPolicy,
    now: datetime,
    opened: Stores,
) -> tuple[str, str]:
    import pandas as pd

    import loopline.tracking as tracking
    from loopline.data import add, load
    from loopline.monitoring._reference import input_names

    labelled = _production_rows(loop.deployment, champion, target, now - policy.window, now, opened)
    if len(labelled) < MIN_TRAINING_LABELS:
        raise InvalidInput(
            f"{len(labelled)} labelled production rows in the window; "
            f"the loop needs at least {MIN_TRAINING_LABELS}",
            hint="send feedback for more requests, or widen the policy's window",
        )
    cut = int(len(labelled) * (1 - HOLDOUT_SHARE))
    fresh, holdout = labelled.iloc[:cut], labelled.iloc[cut:]
    folder = _folder(opened, loop.deployment)
    with tracking.start_run(
        experiment=f"loop-{loop.deployment}",
        name=f"training set {loop.id[:8]}",
        tags={"loopline.loop": loop.id},
    ):
        base = load(reference)
        tracking.log_input(
            fresh.drop(columns=["time"]), context="production", name="production-window"
        )
        columns = [*input_names(champion), target]
        missing = [c for c in columns if c not in base.columns]
        if missing:
            raise InvalidInput(
                f"reference {reference} lacks {missing}: the loop cannot add production rows to it"
            )
        added = _not_in(fresh[columns], base[columns])
        training = pd.concat([base[columns], added], ignore_index=True)
        train_path = folder / f"train-{loop.id}.parquet"
        holdout_path = folder / f"holdout-{loop.id}.parquet"
        training.to_parquet(train_path, index=False)
        holdout[columns].to_parquet(holdout_path, index=False)
        train = add(train_path, name=f"{loop.deployment}-train", message=f"retrain loop {loop.id}")
        kept = add(
            holdout_path, name=f"{loop.deployment}-holdout", message=f"retrain loop {loop.id}"
        )
    _step(
        opened,
        loop,
        "loop.dataset",
        {
            "training": train.version.ref,
            "holdout": kept.version.ref,
            "reference": reference,
            "production_rows": len(fresh),
            "already_in_reference": len(fresh) - len(added),
            "holdout_rows": len(holdout),
            "window": {"since": (now - policy.window).isoformat(), "until": now.isoformat()},
        },
        f"{reference} + {len(fresh)} labelled production rows",
    )
    return train.version.ref, kept.version.ref


def _not_in(rows: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The rows not already in `reference` (all columns equal): a reference that an
    earlier loop built holds that loop's production rows, which are not added twice."""
    try:
        marked = rows.merge(
            reference.drop_duplicates(), how="left", on=list(rows.columns), indicator=True
        )
    except (ValueError, TypeError):  # columns of other types on the two sides: none shared
        return rows
    kept: pd.DataFrame = rows[(marked["_merge"] == "left_only").to_numpy()]
    return kept


def _production_rows(
    deployment: str,
    champion: ModelVersion,
    target: str,
    since: datetime,
    until: datetime,
    opened: Stores,
) -> pd.DataFrame:
    """The window's labelled rows: model inputs, the label as `target`, and time."""
    from loopline.monitoring import _log_window
    from loopline.monitoring._reference import input_names
    from loopline.predictions import prediction_log_files, read_feedback

    paths = prediction_log_files(deployment, since=since, until=until, stores=opened)
    feedback = read_feedback(deployment, since=since - timedelta(seconds=1), stores=opened)
    names = input_names(champion)
    table = _log_window.labelled(paths, since, until, feedback, inputs=names)
    if table.num_rows == 0:
        import pandas as pd

        return pd.DataFrame(columns=[*names, target, "time"])
    frame: pd.DataFrame = table.to_pandas()
    frame = frame.rename(columns={f"input:{n}": n for n in names} | {"label": target})
    ordered: pd.DataFrame = frame[[*names, target, "time"]].sort_values("time", kind="stable")
    return ordered.reset_index(drop=True)


def _folder(opened: Stores, deployment: str) -> Path:
    folder = opened.settings.root / "loop-data" / deployment
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _train(
    loop: LoopRun,
    champion: ModelVersion,
    train_ref: str,
    target: str,
    action: Action,
    opened: Stores,
) -> ModelVersion:
    import loopline.tracking as tracking
    from loopline.data import load
    from loopline.models import log_model

    params = dict(getattr(action, "params", None) or {})
    started = datetime.now(UTC)
    with tracking.start_run(
        experiment=f"loop-{loop.deployment}",
        name=f"retrain {loop.id[:8]}",
        params=params or None,
        tags={"loopline.loop": loop.id},
    ) as run:
        if getattr(action, "train", None):
            function = _callable(str(action.train), opened.settings.root)
            data = load(train_ref)
            model = function(data, target, params)
            features = data.drop(columns=[target])
            version = log_model(model, champion.model, input_example=features.head(5))
        else:
            version = _train_by_command(
                str(action.command), train_ref, target, champion, run.id, started, opened
            )
    _step(
        opened,
        loop,
        "loop.trained",
        {"run": run.id, "candidate": version.ref, "data": train_ref},
        f"{version.ref} trained on {train_ref}",
    )
    return version


def _callable(spec: str, root: Path) -> Any:
    import importlib
    import re

    match = re.fullmatch(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_]\w*)", spec)
    if match is None:
        raise InvalidInput(f"train must be module:function, got {spec!r}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(match[1])
    function = getattr(module, match[2], None)
    if not callable(function):
        raise InvalidInput(f"{spec} is not a function")
    return function


def _train_by_command(
    command: str,
    train_ref: str,
    target: str,
    champion: ModelVersion,
    run_id: str,
    started: datetime,
    opened: Stores,
) -> ModelVersion:
    import os
    import shlex
    import subprocess

    env = dict(os.environ)
    env.update(
        LOOPLINE_TRAIN_DATA=train_ref,
        LOOPLINE_TARGET=target,
        LOOPLINE_MODEL_NAME=champion.model,
        LOOPLINE_PARENT_RUN=run_id,
    )
    done = subprocess.run(
        shlex.split(command),
        cwd=opened.settings.root,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        raise InvalidInput(f"the training command exited with {done.returncode}: {tail[0][:300]}")
    versions = [
        v for v in opened.metadata.models.list_versions(champion.model) if v.created_at >= started
    ]
    if not versions:
        raise NotFound(f"the training command registered no new version of {champion.model}")
    return max(versions, key=lambda v: v.version)


def _gates(
    loop: LoopRun,
    candidate: ModelVersion,
    champion: ModelVersion,
    holdout: str,
    target: str,
    opened: Stores,
) -> bool:
    from loopline.evaluation import evaluate
    from loopline.promotion import check_gates

    scores = {}
    for version in (champion, candidate):
        evaluation = evaluate(version.ref, holdout, target=target)
        scores[version.ref] = {
            k: v for k, v in evaluation.metrics.items() if isinstance(v, int | float)
        }
    report = check_gates(candidate, data=holdout, target=target, opened=opened)
    failures = [f"{r.rule}: {r.reason}" for r in report.failures]
    detail = {
        "candidate": candidate.ref,
        "champion": champion.ref,
        "holdout": holdout,
        "passed": report.passed,
        "failures": failures,
        "metrics": scores,
        "gate_check": None if report.check is None else report.check.id,
    }
    _step(
        opened, loop, "loop.gates", detail, "gates passed" if report.passed else "; ".join(failures)
    )
    if not report.passed:
        _step(
            opened,
            loop,
            "loop.refused",
            {"candidate": candidate.ref, "failures": failures},
            "the candidate failed its gates; the deployment is unchanged",
        )
    return bool(report.passed)


def _step(
    opened: Stores, loop: LoopRun, action: str, detail: dict[str, Any], reason: str | None = None
) -> None:
    actor = _actor()
    opened.metadata.audit.record(
        actor=actor,
        action=action,
        object_type=OBJECT,
        object_id=loop.id,
        after={"deployment": loop.deployment, **detail},
        reason=reason,
    )
    loop.steps.append(
        LoopStep(
            action, datetime.now(UTC), actor, {"deployment": loop.deployment, **detail}, reason
        )
    )


def _actor() -> str:
    from loopline.loop.watch import actor

    return actor()


def retrain_from_alert(
    action: Action, policy: MonitorPolicy, report: MonitorReport, opened: Stores
) -> str:
    """The watcher's `retrain` action: one loop, triggered by the report's failed checks."""
    loop = run_loop(
        policy.deployment,
        policy=policy,
        action=action,
        trigger={"by": "alert", "report": report.id, "failed": report.failed},
        opened=opened,
    )
    return f"retrain loop {loop.id}: {loop.status}"
