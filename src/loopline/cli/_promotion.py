"""`loopline models evaluate|promote|approve`, `loopline gate`, `loopline audit ls|verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopline.cli._models import app as models
from loopline.cli._models import print_gate_results
from loopline.cli._output import console, moment, note_cut, number
from loopline.cli._trust import allow_pickle_option, trust_option

if TYPE_CHECKING:
    from loopline.promotion import RuleResult
    from loopline.store import AuditChainReport

audit = typer.Typer(help="The audit log of registry changes.", no_args_is_help=True)


def _open() -> None:
    from loopline.cli._project import open_project

    open_project()


@models.command("evaluate")
def evaluate(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    data: str = typer.Argument(..., help="A dataset version, e.g. credit@3"),
    target: str = typer.Option(..., "--target", "-y", help="The label column."),
    slice_: list[str] | None = typer.Option(
        None, "--slice", "-s", help="A column or a condition like 'age > 60' (repeatable)."
    ),
    sensitive: list[str] | None = typer.Option(
        None, "--sensitive", help="A sensitive column for fairness (repeatable)."
    ),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Evaluate a version on a dataset version; the report is stored with the version.

    Example: loopline models evaluate churn/4 credit@3 -y churned -s segment -s "age > 60"
    """
    from rich.table import Table

    from loopline.evaluation import evaluate as run_evaluation

    _open()
    result = run_evaluation(
        ref,
        data,
        target=target,
        slices=slice_ or [],
        sensitive=sensitive or [],
        trusted=trust or [],
        allow_pickle=allow_pickle,
    )
    if report is not None:
        result.save_html(report)
    if as_json:
        console.print_json(json.dumps(result.report))
        return
    body = result.report
    console.print(f"[bold]{result.version.ref}[/] on {data}: {body['task']}, {body['rows']:,} rows")
    metrics = Table("Metric", "Value", title="Metrics", title_justify="left")
    for key, value in result.metrics.items():
        metrics.add_row(key, number(value, 4))
    console.print(metrics)
    if result.slices:
        keys = list(result.metrics)[:5]
        table = Table("Slice", "Rows", *keys, title="Slices", title_justify="left")
        for name, found in result.slices.items():
            values = found.get("metrics") or {}
            table.add_row(name, f"{found['rows']:,}", *(number(values.get(k), 4) for k in keys))
        console.print(table)
    for line in summary_lines(body):
        console.print(line)
    if report is not None:
        console.print(f"report: {report}")


def summary_lines(body: dict[str, Any]) -> list[str]:
    """Fairness, latency, calibration and robustness as printed lines, each measure only where
    the task has it: a regressor has no demographic parity, ECE or flip rate, and a blank
    after a label reads as a failure (the HTML report shows the same choice)."""
    lines = []
    for column, fair in (body.get("fairness") or {}).items():
        found = _measures(
            fair,
            ("demographic parity diff", "demographic_parity_diff"),
            ("equalized odds diff", "equalized_odds_diff"),
            ("mean prediction diff", "mean_prediction_diff"),
            ("accuracy diff", "accuracy_diff"),
        )
        if found:
            lines.append(f"fairness {column}: {', '.join(found)}")
    latency = body.get("latency") or {}
    parts = []
    if latency.get("p50_ms") is not None or latency.get("p99_ms") is not None:
        parts.append(
            f"latency one row p50 {number(latency.get('p50_ms'), 3)} ms, "
            f"p99 {number(latency.get('p99_ms'), 3)} ms"
        )
    parts += _measures(body.get("calibration") or {}, ("calibration ECE", "ece"))
    parts += _measures(
        body.get("robustness") or {},
        ("flip rate", "flip_rate"),
        ("mean abs change / target std", "mean_abs_change"),
    )
    if parts:
        lines.append("; ".join(parts))
    return lines


def _measures(values: dict[str, Any], *named: tuple[str, str]) -> list[str]:
    """`label value` for each measure that is present; absent ones are left out, not blank."""
    present = [(label, values.get(key)) for label, key in named]
    return [f"{label} {number(value, 4)}" for label, value in present if value is not None]


@models.command("promote")
def promote(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    to: str = typer.Option("production", "--to", help="staging or production."),
    alias: str | None = typer.Option(None, "--alias", help="Also point this alias at it."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    force: bool = typer.Option(False, "--force", help="Promote despite failed gates (audited)."),
    policy: Path | None = typer.Option(None, "--policy", help="A YAML policy file."),
    data: str | None = typer.Option(None, "--data", help="Evaluate on this dataset version."),
    target: str | None = typer.Option(None, "--target", "-y", help="The label column."),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Run the gates, then move a version to staging or production.

    Refuses (exit 1, with a table of the failed rules) unless every rule passes or
    --force --reason is given.

    Example: loopline models promote churn/4 --to production --alias champion --reason "..."
    """
    from loopline import promotion
    from loopline.errors import PromotionRefused

    _open()
    loaded = None if policy is None else promotion.load_policy(policy)
    try:
        result = promotion.promote(
            ref,
            to=to,
            alias=alias,
            reason=reason,
            force=force,
            policy=loaded,
            data=data,
            target=target,
            trusted=trust or [],
            allow_pickle=allow_pickle,
        )
    except PromotionRefused:
        checks = promotion.list_gate_checks(ref)
        if checks:
            print_gate_results(checks[0].results, title="Gates")
        raise
    if result.gates is not None and result.gates.results:
        print_gate_results([_result(r) for r in result.gates.results], title="Gates")
    for note in [] if result.gates is None else result.gates.notes:
        console.print(f"[dim]{note}[/]")
    if result.forced:
        console.print("[yellow]forced past failed gates; recorded in the audit log[/]")
    version = result.version
    if result.awaiting_approval:
        console.print(
            f"{version.ref} is in [bold]{version.status.value}[/], waiting for an approval: "
            f"loopline models approve {version.ref} --reason '...'"
        )
        return
    aliased = f", {version.model}@{result.alias}" if result.alias else ""
    console.print(f"{version.ref} is now [bold]{version.status.value}[/]{aliased}")


@models.command("approve")
def approve(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
) -> None:
    """Approve a version; a promotion waiting for this approval completes.

    Example: loopline models approve churn/4 --reason "reviewed by risk team"
    """
    from loopline import promotion

    _open()
    completed = promotion.approve(ref, reason=reason)
    if completed is None:
        console.print(f"approved {ref}")
        return
    version = completed.version
    aliased = f", {version.model}@{completed.alias}" if completed.alias else ""
    console.print(f"approved; {version.ref} is now [bold]{version.status.value}[/]{aliased}")


def gate(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    policy: Path | None = typer.Option(None, "--policy", help="A YAML policy file."),
    data: str | None = typer.Option(None, "--data", help="Evaluate on this dataset version."),
    target: str | None = typer.Option(None, "--target", "-y", help="The label column."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Run the promotion gates alone (for CI): exit 0 if every rule passes, 1 otherwise.

    Example: loopline gate churn/4 --policy gates.yaml
    """
    from loopline import promotion

    _open()
    loaded = None if policy is None else promotion.load_policy(policy)
    report = promotion.check_gates(
        ref,
        policy=loaded,
        data=data,
        target=target,
        trusted=trust or [],
        allow_pickle=allow_pickle,
    )
    results = [_result(r) for r in report.results]
    if as_json:
        console.print_json(
            json.dumps({"version": report.version.ref, "passed": report.passed, "rules": results})
        )
    else:
        print_gate_results(results, title=f"Gates for {report.version.ref}")
        for note in report.notes:
            console.print(f"[dim]{note}[/]")
        verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
        console.print(f"{report.version.ref}: gates {verdict}")
    if not report.passed:
        raise typer.Exit(1)


@audit.command("ls")
def list_events(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's events."),
    action: str | None = typer.Option(None, "--action", help="e.g. alias.set"),
    actor: str | None = typer.Option(None, "--actor", help="Only this actor's events."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many events."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List audit events, newest first.

    Example: loopline audit ls --model churn
    """
    from rich.table import Table

    from loopline import registry

    _open()
    probe = limit + 1 if limit > 0 else limit
    events = registry.audit_log(model=model, action=action, actor=actor, limit=probe)
    if len(events) > limit > 0:
        events = events[:limit]
        note_cut(limit, "events", "--limit")
    if as_json:
        body = [
            {
                "time": e.time.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "object": e.object_id,
                "before": e.before,
                "after": e.after,
                "reason": e.reason,
            }
            for e in events
        ]
        console.print_json(json.dumps(body))
        return
    table = Table("Time", "Actor", "Action", "Object", "Before", "After", "Reason")
    for event in events:
        table.add_row(
            moment(event.time),
            event.actor,
            event.action,
            event.object_id,
            _brief(event.before),
            _brief(event.after),
            event.reason or "",
        )
    console.print(table)


@audit.command("verify")
def verify(
    expect_head: str | None = typer.Option(
        None, "--expect-head", help="A head hash recorded earlier; fail if it is gone."
    ),
    max_problems: int = typer.Option(
        20, "--max-problems", min=1, help="Describe at most this many problems."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the audit log's hash chain: exit 0 and the head hash if every event is intact,
    otherwise one line per edited, deleted, reordered or forged event and exit 5.

    Keep the printed head hash outside the database and pass it later as --expect-head:
    a chain rewritten from an edit onward is only caught that way.

    Example: loopline audit verify --expect-head 3f2a...
    """
    from loopline import registry
    from loopline.errors import CorruptedData

    _open()
    report = registry.verify_audit_log(expect_head=expect_head, max_problems=max_problems)
    if as_json:
        console.print_json(json.dumps(_report_body(report)))
    else:
        for problem in report.problems:
            console.print(problem.message, markup=False, soft_wrap=True)
        shown = len(report.problems)
        if report.problem_count > shown:
            more = _count(report.problem_count - shown, "more problem")
            console.print(f"... and {more}", markup=False)
        console.print(_verdict(report), markup=False, soft_wrap=True)
    if not report.ok:
        raise CorruptedData(
            f"the audit log failed verification: {_count(report.problem_count, 'problem')} "
            f"in {_count(report.count, 'event')}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _verdict(report: AuditChainReport) -> str:
    head = f"head #{report.head_seq} {report.head_hash}"
    if not report.ok:
        return f"audit log BROKEN: {_count(report.count, 'event')}, {head}"
    since = ""
    if report.expected_head_seq is not None:
        grown = report.head_seq - report.expected_head_seq
        since = f"; the expected head is event #{report.expected_head_seq} ({grown:,} since)"
    return f"audit log OK: {_count(report.count, 'event')}, {head}{since}"


def _report_body(report: AuditChainReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "events": report.count,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "expected_head_seq": report.expected_head_seq,
        "problem_count": report.problem_count,
        "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems],
    }


def _brief(state: dict[str, object] | None) -> str:
    if not state:
        return ""
    return ", ".join(f"{k}={v}" for k, v in state.items() if v is not None)


def _result(result: RuleResult) -> dict[str, Any]:
    return result.to_dict()
