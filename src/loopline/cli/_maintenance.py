"""`loopline fsck` and `loopline gc`: verify the stores, free what nothing needs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from loopline.cli._output import ByteProgress, console, size

if TYPE_CHECKING:
    from loopline.maintenance import FsckReport, GcReport

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def fsck(
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Remove writes abandoned over an hour ago; move corrupt blobs aside.",
    ),
) -> None:
    """Verify every stored blob, pack index, manifest and database reference.

    Exits 0 when everything is sound, 1 when problems remain. --repair never deletes
    data anything references.

    Example: loopline fsck --repair
    """
    from loopline.cli._project import open_project
    from loopline.maintenance import fsck as check

    open_project()
    with ByteProgress("verifying") as bar:
        report = check(repair=repair, progress=bar.advance, on_total=bar.on_total)
    _print_fsck(report)
    if report.problems:
        raise typer.Exit(1)


def gc(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would be purged and freed; change nothing."
    ),
    older_than: str = typer.Option(
        "0d",
        "--older-than",
        help="Purge only runs deleted longer ago than this (30d, 12h, 90m); 0d: every one.",
    ),
    grace: str = typer.Option(
        "1h",
        "--grace",
        help="Keep unreferenced blobs stored within this long: writers may still need them "
        "(0m only when nothing else writes).",
    ),
) -> None:
    """Purge runs deleted with `runs delete`, then free blobs and packs nothing references.

    Example: loopline gc --dry-run --older-than 30d
    """
    from loopline.cli._project import open_project
    from loopline.maintenance import gc as collect

    older, kept_for = parse_duration(older_than, "--older-than"), parse_duration(grace, "--grace")
    open_project()
    with ByteProgress("repacking") as bar:
        report = collect(older_than=older, grace=kept_for, dry_run=dry_run, progress=bar.advance)
    _print_gc(report)


def parse_duration(text: str, option: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w` (or a sum such as `1d12h`) as a timedelta."""
    from loopline.errors import InvalidInput

    spec = text.strip().lower()
    parts = _DURATION.findall(spec)
    if not parts or "".join(n + u for n, u in parts) != spec:
        raise InvalidInput(
            f"{option} expects a duration such as 30d, 12h or 90m, got {text!r}",
            hint="units: s, m, h, d, w",
        )
    return sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta())


def _print_fsck(report: FsckReport) -> None:
    from rich.table import Table

    checked = (
        f"checked {report.loose_blobs:,} loose blobs, {report.packs:,} packs "
        f"({size(report.bytes_read)}); {report.referenced:,} referenced blobs looked up"
    )
    if report.problems or report.repaired:
        table = Table("problem", "where", "detail", "", title="fsck")
        for problem in report.repaired:
            table.add_row(problem.kind, problem.where, problem.detail, "[green]repaired[/]")
        for problem in report.problems:
            table.add_row(problem.kind, problem.where, problem.detail, "[red]found[/]")
        console.print(table)
    if report.in_progress:
        console.print(
            f"{report.in_progress} write(s) younger than an hour left alone (may be running)"
        )
    if report.problems:
        console.print(f"[red]{len(report.problems)} problem(s)[/]; {checked}")
    else:
        done = f"{len(report.repaired)} repaired; " if report.repaired else ""
        console.print(f"[green]no problems[/]; {done}{checked}")


def _print_gc(report: GcReport) -> None:
    from rich.table import Table

    table = Table(
        "",
        "would be" if report.dry_run else "done",
        title="gc" + (" (dry run)" if report.dry_run else ""),
    )
    table.add_row("runs purged", f"{report.runs_purged:,}")
    table.add_row("blobs freed", f"{report.blobs_freed:,}")
    table.add_row("packs removed", f"{report.packs_removed:,}")
    table.add_row("packs repacked", f"{report.packs_repacked:,}")
    table.add_row("abandoned writes removed", f"{report.leftovers_removed:,}")
    table.add_row("bytes freed", size(report.bytes_freed))
    recent = f"{report.kept_recent:,} ({size(report.kept_recent_bytes)})"
    table.add_row("unreferenced, kept (within --grace)", recent)
    console.print(table)
    for run_id, why in sorted(report.runs_kept.items()):
        console.print(f"kept deleted run {run_id}: {why}")
