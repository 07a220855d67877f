"""`monitor watch`: every monitoring policy run on its schedule, in the foreground.

Windows are aligned to the policy's `every` (a policy with every = 10m judges the windows
ending at :00, :10, :20, ...). The metadata store keeps, per deployment, the end of the
last window that was completed, so a watcher that stops (or is killed) and starts again
runs the windows it missed, oldest first, and none twice:

1. the report of a window is stored under a key naming the window (a report already
   stored for it is found, not stored again);
2. each failed check opens an alert (at most one open per deployment and check), written
   `pending` before its notification goes out and marked sent after: a watcher killed in
   between delivers it when it runs again; an open alert is sent again after the
   policy's cool-down while its check keeps failing, and resolved when the check passes;
3. the other actions of a newly opened alert run once (`rollback`: the deployment's
   previous configuration; `retrain`: one retrain loop, see loop/retrain.py);
4. the window is recorded as done;
5. canaries started by retrain loops are judged (see loop/canary.py).

Every opened, sent and resolved alert and every action is an audit event (object type
`deployment`, the deployment's name; actor `loopline-monitor` unless LOOPLINE_USER says
otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError

if TYPE_CHECKING:
    from loopline.monitoring.policy import Action, MonitorPolicy
    from loopline.monitoring.report import MonitorReport
    from loopline.project import Stores

log = logging.getLogger(__name__)
MAX_CATCH_UP = 100  # windows run in one cycle for a deployment that fell behind
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class CycleResult:
    """What one watcher cycle did for one deployment."""

    deployment: str
    windows: list[str] = field(default_factory=list)  # report ids, oldest first
    opened: list[str] = field(default_factory=list)  # checks that opened an alert
    resolved: list[str] = field(default_factory=list)
    sent: int = 0
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_windows: int = 0


def window_ends(
    policy: MonitorPolicy, last_until: datetime | None, now: datetime
) -> list[datetime]:
    """The ends of the windows due at `now`: aligned to `every`, after `last_until`
    (only the newest one for a deployment never watched), at most MAX_CATCH_UP."""
    step = policy.every
    latest = EPOCH + ((now - EPOCH) // step) * step
    if last_until is None:
        return [latest]
    ends = []
    moment = EPOCH + ((last_until - EPOCH) // step + 1) * step
    while moment <= latest:
        ends.append(moment)
        moment += step
    return ends


def watch_once(
    *,
    now: datetime | None = None,
    policies: dict[str, MonitorPolicy] | None = None,
    opened: Stores | None = None,
) -> list[CycleResult]:
    """One cycle over every policy (those of loopline.toml when None): the due windows,
    their alerts and actions, then pending notifications."""
    from loopline.monitoring.policy import policies_from_settings
    from loopline.project import stores

    opened = opened or stores()
    now = now or datetime.now(UTC)
    chosen = policies if policies is not None else policies_from_settings(opened.settings)
    results = []
    for deployment, policy in sorted(chosen.items()):
        result = CycleResult(deployment)
        try:
            _cycle(policy, now, opened, result)
        except LooplineError as exc:
            result.errors.append(str(exc))
            log.warning("monitoring %s failed: %s", deployment, exc)
        results.append(result)
    for result in results:
        policy = chosen[result.deployment]
        result.sent += deliver_pending(policy, opened)
    return results


def watch(
    *,
    every: timedelta | None = None,
    policies: dict[str, MonitorPolicy] | None = None,
    on_cycle: Callable[[list[CycleResult]], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run cycles until `stop()` says so (or forever): each `every` (default: the shortest
    `every` of the policies, at most a minute apart)."""
    from loopline.monitoring.policy import policies_from_settings
    from loopline.project import stores

    opened = stores()
    chosen = policies if policies is not None else policies_from_settings(opened.settings)
    pause = every or min((p.every for p in chosen.values()), default=timedelta(minutes=1))
    pause = min(pause, timedelta(minutes=1))
    while True:
        results = watch_once(policies=chosen, opened=opened)
        if on_cycle is not None:
            on_cycle(results)
        if stop is not None and stop():
            return
        time.sleep(pause.total_seconds())


def _cycle(policy: MonitorPolicy, now: datetime, opened: Stores, result: CycleResult) -> None:
    from loopline.monitoring import run

    monitoring = opened.metadata.monitoring
    state = monitoring.state(policy.deployment)
    ends = window_ends(policy, state.last_until, now)
    if len(ends) > MAX_CATCH_UP:
        result.skipped_windows = len(ends) - MAX_CATCH_UP
        log.warning(
            "%s: %d windows missed; judging the newest %d",
            policy.deployment,
            len(ends),
            MAX_CATCH_UP,
        )
        ends = ends[-MAX_CATCH_UP:]
    for end in ends:
        report = run(
            policy.deployment,
            since=end - policy.window,
            until=end,
            policy=policy,
            schedule_key=end.isoformat(),
            opened=opened,
        )
        assert report.id is not None
        result.windows.append(report.id)
        if report.status != "skipped":
            _alerts(policy, report, opened, result)
        monitoring.set_state(policy.deployment, last_until=end, report_id=report.id)
    from loopline.loop.canary import judge_canaries

    for loop in judge_canaries(policy, now=now, opened=opened):
        result.actions.append(f"retrain loop {loop.id}: {loop.status}")


def _alerts(
    policy: MonitorPolicy, report: MonitorReport, opened: Stores, result: CycleResult
) -> None:
    monitoring = opened.metadata.monitoring
    checks = report.data.get("checks") or {}
    for check, outcome in checks.items():
        if outcome["passed"]:
            closed = monitoring.resolve_alert(policy.deployment, check)
            if closed is not None:
                result.resolved.append(check)
                _audit(
                    opened,
                    "monitor.alert.resolved",
                    policy.deployment,
                    {"check": check, "alert": closed.id},
                    f"{check} passes again (report {report.id})",
                )
            continue
        summary = summarise(policy.deployment, check, outcome)
        alert, new = monitoring.open_alert(
            policy.deployment, check, summary=summary, report_id=report.id
        )
        if new:
            result.opened.append(check)
            _audit(
                opened,
                "monitor.alert.opened",
                policy.deployment,
                {"check": check, "alert": alert.id, "report": report.id},
                summary,
            )
            for action in policy.actions:
                if action.kind != "alert" and _applies(action, check):
                    result.actions.append(_act(action, policy, report, check, opened))
        elif (
            alert.last_sent_at is not None
            and datetime.now(UTC) - alert.last_sent_at >= policy.cooldown
        ):
            monitoring.mark_pending(alert.id, summary=summary, report_id=report.id)


def _applies(action: Action, check: str) -> bool:
    return action.when in ("any", check)


def summarise(deployment: str, check: str, outcome: dict[str, Any]) -> str:
    """One line for an alert: which check failed and on what."""
    details = outcome.get("details")
    parts: list[str] = []
    if isinstance(details, dict):
        for key, value in details.items():
            if isinstance(value, list):
                parts.append(f"{key}: {', '.join(map(str, value[:8]))}")
            elif isinstance(value, dict) and "metric" in value:
                parts.append(
                    f"{key}: {value['metric']} {value['value']:.4g}"
                    f" vs {value['baseline']:.4g} ({value['source']})"
                )
    elif isinstance(details, list):
        parts = [f"{c.get('b')} worse than {c.get('a')}" for c in details if c.get("better") == "a"]
    return f"{deployment}: {check} check failed" + (f" ({'; '.join(parts)})" if parts else "")


def _act(
    action: Action, policy: MonitorPolicy, report: MonitorReport, check: str, opened: Stores
) -> str:
    """Run a rollback or retrain action once; a line saying what happened."""
    reason = f"monitoring: {check} check failed in report {report.id}"
    if action.kind == "rollback":
        from loopline.project import Scope, bound
        from loopline.serving.deployments import rollback_deployment

        try:
            with bound(Scope(opened)):
                deployment = rollback_deployment(policy.deployment, reason=reason, actor=actor())
        except LooplineError as exc:
            _audit(
                opened,
                "monitor.rollback.failed",
                policy.deployment,
                {"check": check, "error": str(exc)},
                reason,
            )
            return f"rollback failed: {exc}"
        return f"rolled back to revision {deployment.revision}"
    if action.kind == "retrain":
        from loopline.loop.retrain import retrain_from_alert

        return retrain_from_alert(action, policy, report, opened)
    return f"unknown action {action.kind!r}"


def deliver_pending(policy: MonitorPolicy, opened: Stores) -> int:
    """Deliver the pending notifications of the policy's deployment; how many were sent."""
    from loopline.monitoring.alerts import Alert, deliver

    monitoring = opened.metadata.monitoring
    targets = [a for a in policy.actions if a.kind == "alert"]
    sent = 0
    for record in monitoring.pending_alerts():
        if record.deployment != policy.deployment:
            continue
        alert = Alert(
            deployment=record.deployment,
            check=record.check,
            severity="critical" if record.check in ("performance", "canary") else "warning",
            summary=record.summary,
            details={"alert_id": record.id, "sends": record.sends},
            report_id=record.report_id,
            opened_at=record.opened_at,
        )
        delivered = [
            deliver(alert, action, project_root=opened.settings.root)
            for action in targets
            if _applies(action, record.check)
        ]
        if all(d.ok for d in delivered):
            monitoring.mark_sent(record.id)
            sent += 1
            for d in delivered:
                _audit(
                    opened,
                    "monitor.alert.sent",
                    record.deployment,
                    {"check": record.check, "alert": record.id, "target": d.target},
                    record.summary,
                )
        else:
            failures = "; ".join(f"{d.target}: {d.error}" for d in delivered if not d.ok)
            log.warning("alert %s not delivered: %s", record.id, failures)
    return sent


def actor() -> str:
    import os

    return os.environ.get("LOOPLINE_USER") or "loopline-monitor"


def _audit(
    opened: Stores, action: str, deployment: str, after: dict[str, Any], reason: str
) -> None:
    opened.metadata.audit.record(
        actor=actor(),
        action=action,
        object_type="deployment",
        object_id=deployment,
        after=after,
        reason=reason,
    )
