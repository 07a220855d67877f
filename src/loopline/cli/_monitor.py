"""`loopline monitor run|compare|ls|show|watch|alerts`: reports over the prediction log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopline.cli._output import console, err, moment, number

if TYPE_CHECKING:
    from loopline.monitoring.report import MonitorReport

app = typer.Typer(
    help="Monitoring: drift, integrity and performance of a deployment's predictions.",
    no_args_is_help=True,
)


def _open() -> None:
    from loopline.cli._project import open_project

    open_project()


@app.command("run")
def run(
    deployment: str = typer.Argument(..., help="The deployment to monitor."),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Start of the window: 1h, 2d or an ISO time (default: the policy's window).",
    ),
    until: str | None = typer.Option(None, "--until", help="End of the window (default: now)."),
    reference: str | None = typer.Option(
        None, "--reference", help="'training' (the served version's training data) or NAME@VERSION."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="A YAML monitoring policy."),
    segment: list[str] | None = typer.Option(
        None, "--segment", help="Repeat the tables per value of this input (repeatable)."
    ),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report on a window of a deployment's log; exit code 1 when a check fails.

    Example: loopline monitor run credit --since 1h --segment region --report drift.html
    """
    from loopline.monitoring import run as run_report
    from loopline.monitoring.policy import load_policy
    from loopline.predictions import parse_since

    _open()
    result = run_report(
        deployment,
        since=None if since is None else parse_since(since),
        until=None if until is None else parse_since(until),
        reference=reference,
        policy=None if policy is None else load_policy(policy),
        segments=tuple(segment or ()),
    )
    if report is not None:
        _write_html(result, report)
    if as_json:
        typer.echo(result.to_json(indent=2))
    else:
        print_report(result)
        if report is not None:
            err.print(f"HTML report: {report}")
    if not result.passed:
        raise typer.Exit(1)


@app.command("compare")
def compare(
    reference: str = typer.Argument(..., help="The reference dataset version, e.g. credit@1."),
    current: str = typer.Argument(..., help="The dataset version compared with it, e.g. credit@2."),
    column: list[str] | None = typer.Option(None, "--column", "-c", help="Only these columns."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Drift statistics between two dataset versions (no deployment needed).

    Example: loopline monitor compare credit@1 credit@2
    """
    import json

    from loopline.monitoring import drift

    _open()
    result = drift(reference, current, columns=column or None)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console.print(f"[bold]{current}[/] against [bold]{reference}[/]")
    console.print(_feature_table(result.to_dict()["features"], "Columns"))
    drifted = result.drifted
    console.print(
        f"{len(drifted)} of {len(result.features)} columns drifted"
        + (f": {', '.join(drifted)}" if drifted else "")
    )


@app.command("ls")
def list_command(
    deployment: str | None = typer.Argument(None, help="Only this deployment's reports."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stored monitoring reports, newest first."""
    import json

    from rich.table import Column, Table

    from loopline.monitoring import list_reports

    _open()
    found = list_reports(deployment, limit=limit)
    if as_json:
        rows = [
            {
                "id": r.id,
                "deployment": r.deployment,
                "created_at": r.created_at.isoformat(),
                "since": None if r.since is None else r.since.isoformat(),
                "until": r.until.isoformat(),
                "rows": r.rows,
                "status": r.status,
                "failed": r.failed,
                "reference": r.reference,
            }
            for r in found
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not found:
        err.print("no monitoring reports" + (f" for {deployment}" if deployment else ""))
        return
    table = Table(
        Column("ID", no_wrap=True), "Deployment", "Created", "Window", "Rows", "Status", "Failed"
    )
    for r in found:
        window = f"{moment(r.since, short=True)} → {moment(r.until, short=True)}"
        table.add_row(
            r.id,
            r.deployment,
            moment(r.created_at, short=True),
            window,
            f"{r.rows:,}",
            _status(r.status),
            ", ".join(r.failed) or "–",
        )
    console.print(table)


@app.command("show")
def show(
    report_id: str = typer.Argument(..., help="A report id (see `loopline monitor ls`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Write the stored HTML page here."),
) -> None:
    """One stored report."""
    from loopline.monitoring import load_report
    from loopline.monitoring.report import report_html

    _open()
    result = load_report(report_id)
    if html is not None:
        html.write_text(report_html(report_id), encoding="utf-8")
    if as_json:
        typer.echo(result.to_json(indent=2))
        return
    print_report(result)


def _write_html(result: MonitorReport, path: Path) -> None:
    from loopline.monitoring.report import report_html

    if result.id is not None:
        path.write_text(report_html(result.id), encoding="utf-8")
    else:
        result.save_html(path)


def _status(status: str) -> str:
    colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/]"


def print_report(result: MonitorReport) -> None:
    """The report as tables: the checks, then per version its drift and performance."""
    from rich.table import Table

    data = result.data
    window = data["window"]
    console.print(
        f"[bold]{data['deployment']}[/] {_status(result.status)}"
        f"  {window['since']} → {window['until']}"
        f"  {data['rows']:,} rows  reference {data.get('reference') or '–'}"
        + (f"  report {result.id}" if result.id else "")
    )
    if data.get("reason"):
        console.print(data["reason"])
    checks = data.get("checks") or {}
    if checks:
        table = Table("Check", "Result", "Details", title="Checks", title_justify="left")
        for name, check in checks.items():
            table.add_row(name, _status("passed" if check["passed"] else "failed"), _details(check))
        console.print(table)
    for name, body in (data.get("versions") or {}).items():
        title = f"{name} ({body['role']}, {body['rows']:,} rows)"
        console.print(_feature_table(body.get("features") or {}, f"{title}: inputs"))
        if body.get("outputs"):
            console.print(_feature_table(body["outputs"], f"{title}: outputs"))
        multivariate = body.get("multivariate")
        if multivariate:
            console.print(
                "multivariate (PCA reconstruction error): "
                f"{number(multivariate.get('reconstruction_error'), 4)}"
                f" against {number(multivariate.get('reference'), 4)}"
                f" (upper {number(multivariate.get('upper'), 4)})"
                + ("  [red]drifted[/]" if multivariate.get("drifted") else "")
            )
        _print_performance(body.get("performance") or {})
    for entry in data.get("comparison") or []:
        console.print(_comparison_line(entry))


def _details(check: dict[str, Any]) -> str:
    details = check.get("details")
    if isinstance(details, dict):
        parts = []
        for key, value in details.items():
            if isinstance(value, list):
                parts.append(f"{key}: {', '.join(map(str, value))}")
            elif isinstance(value, dict) and "drop" in value:
                parts.append(
                    f"{key}: {value['metric']} {number(value['value'], 4)} ({value['source']}),"
                    f" stored {number(value['baseline'], 4)}"
                )
        return "; ".join(parts)[:300]
    if isinstance(details, list):
        return "; ".join(_comparison_line(item) for item in details)[:300]
    return ""


def _comparison_line(entry: dict[str, Any]) -> str:
    if entry.get("p_value") is None:
        why = entry.get("note") or entry.get("reason") or "no answer yet"
        return f"{entry['b']} vs {entry['a']}: {why}"
    low, high = entry.get("confidence_interval") or (None, None)
    better = entry.get("better")
    winner = entry["a"] if better == "a" else entry["b"] if better == "b" else "not significant"
    remaining = entry.get("samples_remaining") or {}
    more = (
        f", {sum(remaining.values()):,} more labelled rows to tell"
        if remaining and not better
        else ""
    )
    return (
        f"{entry['b']} vs {entry['a']} ({entry.get('metric')}): "
        f"difference {number(entry.get('difference'), 4)} [{number(low, 4)}, {number(high, 4)}],"
        f" p = {number(entry.get('p_value'), 3)}, better: {winner}{more}"
    )


def _feature_table(features: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    table = Table(
        "Column",
        "Drifted",
        "PSI",
        "KS",
        "p",
        "Wasserstein",
        "χ²",
        "JS",
        "Nulls",
        title=title,
        title_justify="left",
    )
    for name, stats in features.items():
        table.add_row(
            name,
            "[red]yes[/]" if stats.get("drifted") else "no",
            number(stats.get("psi"), 3),
            number(stats.get("ks"), 3),
            number(stats.get("ks_pvalue", stats.get("chi2_pvalue")), 3),
            number(stats.get("wasserstein"), 3),
            number(stats.get("chi2"), 4),
            number(stats.get("js"), 3),
            number(stats.get("null_rate"), 3),
        )
    return table


def _print_performance(performance: dict[str, Any]) -> None:
    from rich.table import Table

    realised = (performance.get("realised") or {}).get("metrics") or {}
    estimated = (performance.get("estimated") or {}).get("metrics") or {}
    baseline = (performance.get("baseline") or {}).get("metrics") or {}
    names = list(dict.fromkeys([*realised, *estimated]))
    if not names:
        console.print(
            f"performance: {performance.get('labelled_rows', 0):,} labelled rows, no metrics yet"
        )
        return
    table = Table(
        "Metric",
        "Realised",
        "Estimated",
        "Stored evaluation",
        title=f"Performance ({performance.get('labelled_rows', 0):,} labelled rows)",
        title_justify="left",
    )
    for name in names:
        table.add_row(
            name,
            number(realised.get(name), 4),
            number(estimated.get(name), 4),
            number(baseline.get(name), 4),
        )
    console.print(table)
