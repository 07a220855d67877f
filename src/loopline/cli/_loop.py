"""`loopline monitor watch|alerts` and `loopline loop run|show|ls`: the closed loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopline.cli._monitor import app as monitor
from loopline.cli._output import console, err, moment

if TYPE_CHECKING:
    from loopline.loop.retrain import LoopRun
    from loopline.loop.watch import CycleResult

app = typer.Typer(
    help="The retrain loop: retrain, gate, canary, promote or roll back.", no_args_is_help=True
)


def _open() -> None:
    from loopline.cli._project import open_project

    open_project()


def _policies(policy: Path | None) -> dict[str, object] | None:
    if policy is None:
        return None
    from loopline.monitoring.policy import load_policy

    loaded = load_policy(policy)
    return {loaded.deployment: loaded}


@monitor.command("watch")
def watch(
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    every: str | None = typer.Option(
        None, "--every", help="Time between cycles, e.g. 10m (default: the policies')."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="Watch only this YAML policy."),
) -> None:
    """Run every monitoring policy on its schedule, in the foreground (Ctrl-C stops).

    Example: loopline monitor watch --every 5m
    """
    from datetime import UTC, datetime

    from loopline.loop.watch import watch as run_watch
    from loopline.loop.watch import watch_once
    from loopline.predictions import parse_since

    _open()
    chosen = _policies(policy)
    if once:
        results = watch_once(policies=chosen)  # type: ignore[arg-type]
        _print_cycle(results)
        if any(r.errors for r in results):
            raise typer.Exit(1)
        return
    pause = None
    if every is not None:
        now = datetime.now(UTC)
        pause = now - parse_since(every, now)
    try:
        run_watch(every=pause, policies=chosen, on_cycle=_print_cycle)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        err.print("stopped")


def _print_cycle(results: list[CycleResult]) -> None:
    from datetime import UTC, datetime

    if not results:
        err.print("no monitoring policies: add [monitor.DEPLOYMENT] tables to loopline.toml")
        return
    stamp = moment(datetime.now(UTC), short=True)
    for r in results:
        parts = [f"{len(r.windows)} window(s)"]
        if r.opened:
            parts.append(f"[red]alerts opened: {', '.join(r.opened)}[/]")
        if r.resolved:
            parts.append(f"[green]resolved: {', '.join(r.resolved)}[/]")
        if r.sent:
            parts.append(f"{r.sent} sent")
        parts.extend(r.actions)
        parts.extend(f"[red]error: {e}[/]" for e in r.errors)
        console.print(f"{stamp} {r.deployment}: " + "; ".join(parts))


@monitor.command("alerts")
def alerts(
    deployment: str | None = typer.Argument(None, help="Only this deployment's alerts."),
    open_only: bool = typer.Option(False, "--open", help="Only open alerts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Monitoring alerts, newest first."""
    from rich.table import Table

    from loopline.project import stores

    _open()
    found = stores().metadata.monitoring.alerts(deployment, status="open" if open_only else None)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": a.id,
                        "deployment": a.deployment,
                        "check": a.check,
                        "status": a.status,
                        "summary": a.summary,
                        "report": a.report_id,
                        "opened_at": a.opened_at.isoformat(),
                        "last_sent_at": None
                        if a.last_sent_at is None
                        else a.last_sent_at.isoformat(),
                        "resolved_at": None if a.resolved_at is None else a.resolved_at.isoformat(),
                        "sends": a.sends,
                    }
                    for a in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        err.print("no alerts")
        return
    table = Table("Opened", "Deployment", "Check", "Status", "Sent", "Summary")
    for a in found:
        colour = "red" if a.status == "open" else "green"
        table.add_row(
            moment(a.opened_at, short=True),
            a.deployment,
            a.check,
            f"[{colour}]{a.status}[/]",
            str(a.sends),
            a.summary,
        )
    console.print(table)


@app.command("run")
def run(
    deployment: str = typer.Argument(..., help="The deployment whose model is retrained."),
    policy: Path | None = typer.Option(
        None, "--policy", help="A YAML monitoring policy with a retrain action."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the loop as JSON."),
) -> None:
    """Retrain once, end to end: new training set, training run, gates, canary.

    Example: loopline loop run credit
    """
    from loopline.loop.retrain import run_loop
    from loopline.monitoring.policy import load_policy

    _open()
    loop = run_loop(deployment, policy=None if policy is None else load_policy(policy))
    _print_loop(loop, as_json)
    if loop.status in ("failed", "refused"):
        raise typer.Exit(1)


@app.command("show")
def show(
    loop_id: str = typer.Argument(..., help="A loop id (see `loopline loop ls`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the loop as JSON."),
) -> None:
    """A loop's chain: alert → dataset version → run → candidate → gates → canary → end."""
    from loopline.loop.canary import show_loop

    _open()
    _print_loop(show_loop(loop_id), as_json)


@app.command("ls")
def list_command(
    deployment: str | None = typer.Argument(None, help="Only this deployment's loops."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many (newest first)."),
) -> None:
    """Retrain loops, newest first."""
    from rich.table import Column, Table

    from loopline.loop.canary import list_loops

    _open()
    found = list_loops(deployment, limit=limit)
    if not found:
        err.print("no retrain loops")
        return
    table = Table(Column("ID", no_wrap=True), "Deployment", "Started", "Status", "Candidate")
    for loop in found:
        table.add_row(
            loop.id,
            loop.deployment,
            moment(loop.steps[0].time, short=True),
            loop.status,
            str(loop.detail("loop.trained").get("candidate", "–")),
        )
    console.print(table)


def _print_loop(loop: LoopRun, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(loop.to_dict(), indent=2, default=str))
        return
    console.print(f"[bold]retrain loop {loop.id}[/] of {loop.deployment}: {loop.status}")
    for step in loop.steps:
        detail = {k: v for k, v in step.detail.items() if k != "deployment"}
        summary = ", ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, dict | list))
        console.print(
            f"  {moment(step.time)}  [bold]{step.action.removeprefix('loop.')}[/]  {summary}"
        )
        if step.reason:
            console.print(f"      {step.reason}")
