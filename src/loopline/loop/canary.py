"""Judging a retrain loop's canary, and reading loops back.

A loop's canary is judged on the labelled requests since it started: once it has
`judge_min_rows` labelled rows, or `judge_after` has passed, the significance report of
the canary against the stable version decides. Significantly worse: rolled back. Not
worse, with labelled rows to show it: promoted (the deployment, and the policy's alias in
the registry). No labelled canary rows by `judge_after`: rolled back, since nothing shows
it is as good. A canary that is no longer the deployment's canary (someone changed the
deployment meanwhile) ends the loop without touching the deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError
from loopline.loop.retrain import ENDS, OBJECT, LoopRun, LoopStep, _actor, _step

if TYPE_CHECKING:
    from loopline.monitoring.policy import Action, MonitorPolicy
    from loopline.project import Stores

DEFAULT_JUDGE_ROWS = 200
DEFAULT_JUDGE_AFTER = timedelta(hours=1)
DEFAULT_ALIAS = "champion"


def show_loop(loop_id: str, *, opened: Stores | None = None) -> LoopRun:
    """A loop's chain of steps, oldest first. Raises NotFound for an unknown id."""
    import re

    from loopline.errors import NotFound
    from loopline.project import stores

    if not isinstance(loop_id, str) or not re.fullmatch(r"[0-9a-f]{32}", loop_id):
        raise InvalidInput(f"not a loop id: {loop_id!r}", hint="see `loopline loop ls`")
    opened = opened or stores()
    events = [
        e
        for e in opened.metadata.audit.list_events(object_id=loop_id, limit=1000)
        if e.object_type == OBJECT
    ]
    if not events:
        raise NotFound(f"no retrain loop {loop_id}", hint="see `loopline loop ls`")
    events.reverse()
    deployment = str((events[0].after or {}).get("deployment", ""))
    loop = LoopRun(loop_id, deployment)
    for event in events:
        loop.steps.append(
            LoopStep(event.action, event.time, event.actor, dict(event.after or {}), event.reason)
        )
    return loop


def list_loops(
    deployment: str | None = None, *, limit: int = 50, opened: Stores | None = None
) -> list[LoopRun]:
    """Loops, newest first (of one deployment when given)."""
    from loopline.project import stores

    opened = opened or stores()
    started = opened.metadata.audit.list_events(action="loop.started", limit=max(limit * 4, 200))
    found = []
    for event in started:
        if event.object_type != OBJECT:
            continue
        if deployment is not None and (event.after or {}).get("deployment") != deployment:
            continue
        found.append(show_loop(event.object_id, opened=opened))
        if len(found) >= limit:
            break
    return found


def judge_canaries(
    policy: MonitorPolicy, *, now: datetime | None = None, opened: Stores | None = None
) -> list[LoopRun]:
    """Judge every loop of the policy's deployment whose canary is running; the loops
    that ended now."""
    from loopline.project import stores

    opened = opened or stores()
    now = now or datetime.now(UTC)
    ended = []
    for loop in list_loops(policy.deployment, opened=opened):
        if loop.status != "canary":
            continue
        if _judge(loop, policy, now, opened):
            ended.append(loop)
    return ended


def _action(policy: MonitorPolicy) -> Action | None:
    return next((a for a in policy.actions if a.kind == "retrain"), None)


def _judge(loop: LoopRun, policy: MonitorPolicy, now: datetime, opened: Stores) -> bool:
    from loopline.monitoring import run
    from loopline.project import Scope, bound
    from loopline.serving.deployments import get_deployment

    canary = loop.detail("loop.canary")
    candidate, started = str(canary["candidate"]), datetime.fromisoformat(str(canary["started"]))
    current = get_deployment(loop.deployment, opened=opened)
    if current.spec.canary is None or current.spec.canary.model != candidate:
        _step(
            opened,
            loop,
            "loop.failed",
            {"candidate": candidate},
            "the deployment no longer runs this canary (changed by hand); left as it is",
        )
        return True
    action = _action(policy)
    min_rows = int(getattr(action, "judge_min_rows", None) or DEFAULT_JUDGE_ROWS)
    after = getattr(action, "judge_after", None) or DEFAULT_JUDGE_AFTER
    report = run(
        loop.deployment,
        since=started,
        until=now,
        policy=_all_rows(policy),
        store=False,
        opened=opened,
    )
    section = (report.versions.get(candidate) or {}).get("performance") or {}
    labelled = int(section.get("labelled_rows") or 0)
    if labelled < min_rows and now - started < after:
        return False
    comparison: dict[str, Any] = next(
        (c for c in report.data.get("comparison") or [] if c.get("b") == candidate), {}
    )
    evidence = {
        "labelled_canary_rows": labelled,
        "comparison": {k: v for k, v in comparison.items() if k != "role"},
    }
    with bound(Scope(opened)):
        if comparison.get("better") == "a" or comparison.get("p_value") is None or labelled == 0:
            why = (
                "significantly worse than the stable version"
                if comparison.get("better") == "a"
                else "no labelled canary requests to judge it by"
                if labelled == 0
                else "its comparison with the stable version could not be made"
            )
            return _roll_back(loop, candidate, evidence, why, opened)
        return _promote(loop, candidate, policy, evidence, opened)


def _all_rows(policy: MonitorPolicy) -> MonitorPolicy:
    from dataclasses import replace

    return replace(policy, min_rows=0)


def _roll_back(
    loop: LoopRun, candidate: str, evidence: dict[str, Any], why: str, opened: Stores
) -> bool:
    from loopline.serving.deployments import update_deployment

    reason = f"retrain loop {loop.id}: canary {candidate} rolled back, {why}"
    try:
        update_deployment(loop.deployment, no_canary=True, reason=reason, actor=_actor())
    except LooplineError as exc:
        _step(
            opened,
            loop,
            "loop.failed",
            {"candidate": candidate, "error": str(exc), **evidence},
            reason,
        )
        return True
    _step(opened, loop, "loop.canary_rolled_back", {"candidate": candidate, **evidence}, reason)
    return True


def _promote(
    loop: LoopRun, candidate: str, policy: MonitorPolicy, evidence: dict[str, Any], opened: Stores
) -> bool:
    from loopline.promotion import promote
    from loopline.serving.deployments import promote_deployment

    action = _action(policy)
    alias = str(getattr(action, "alias", None) or DEFAULT_ALIAS)
    reason = f"retrain loop {loop.id}: canary {candidate} not worse than the stable version"
    deployment = promote_deployment(loop.deployment, reason=reason, actor=_actor())
    registry: dict[str, Any] = {"alias": alias}
    try:
        promoted = promote(candidate, alias=alias, reason=reason, actor=_actor())
        registry["status"] = promoted.version.status.value
    except LooplineError as exc:
        registry["error"] = str(exc)
    _step(
        opened,
        loop,
        "loop.canary_promoted",
        {"candidate": candidate, "revision": deployment.revision, "registry": registry, **evidence},
        reason,
    )
    return True


__all__ = ["ENDS", "judge_canaries", "list_loops", "show_loop"]
