"""`loopline data ...`: versioning, inspecting, moving and validating datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopline.cli._output import ByteProgress, console, moment, number, size

if TYPE_CHECKING:
    from loopline.data import DatasetDiff
    from loopline.data.validation import ValidationResult

app = typer.Typer(help="Datasets: versions, diffs, validation.", no_args_is_help=True)


def _open(*, metadata: bool = True) -> None:
    from loopline.cli._project import open_project

    open_project(metadata=metadata)


@app.command("add")
def add(
    path: Path = typer.Argument(..., help="A file or folder inside the project."),
    name: str | None = typer.Option(
        None, "--name", help="Dataset name (default: the file name without its extension)."
    ),
    message: str | None = typer.Option(None, "-m", "--message", help="What changed."),
) -> None:
    """Version a file or folder: store its content once and write NAME.loopline beside it.

    Example: loopline data add data/credit.csv -m "March extract"
    """
    from loopline import data

    _open(metadata=False)  # an unchanged folder is answered without it (data/versions.py)
    with ByteProgress("hashing") as bar:
        result = data.add(
            path, name=name, message=message, progress=bar.advance, on_total=bar.on_total
        )
    version = result.version
    if result.created:
        console.print(
            f"added [bold]{version.ref}[/] ({version.file_count} files, {size(version.total_size)}"
            f"{'' if version.row_count is None else f', {version.row_count:,} rows'})"
        )
    else:
        console.print(f"unchanged: {version.ref} already holds this content")
    console.print(f"pointer: {result.pointer}  (commit it to pin this version)")
    if result.profile_error:
        console.print(f"[yellow]not profiled:[/] {result.profile_error}")


@app.command("checkout")
def checkout(
    target: str = typer.Argument(..., help="A NAME.loopline pointer file, or NAME@VERSION."),
    clean: bool = typer.Option(False, "--clean", help="Remove files the version lacks."),
) -> None:
    """Restore the data a pointer (or NAME@VERSION) names, verifying every file.

    Example: loopline data checkout data/credit.loopline
    """
    from loopline import data

    _open()
    with ByteProgress("restoring") as bar:
        result = data.checkout(target, clean=clean, progress=bar.advance)
    label = result.version.ref if result.version else "the pointer's version"
    console.print(
        f"checked out {label} at {result.target}: {result.restored} restored, "
        f"{result.unchanged} already up to date"
    )
    if result.extra and not clean:
        console.print(
            f"[yellow]{len(result.extra)} file(s) not in this version[/] (--clean removes)"
        )


@app.command("ls")
def list_datasets() -> None:
    """List datasets and their latest version.

    Example: loopline data ls
    """
    from rich.table import Table

    from loopline import data

    _open()
    table = Table("Dataset", "Latest", "Files", "Size", "Rows", "Updated", title="Datasets")
    for dataset in data.list_datasets():
        if dataset.latest_version is None:
            table.add_row(dataset.name, "-", "", "", "", "")
            continue
        latest = data.resolve(f"{dataset.name}@{dataset.latest_version}")
        table.add_row(
            dataset.name,
            str(latest.version),
            str(latest.file_count),
            size(latest.total_size),
            "" if latest.row_count is None else f"{latest.row_count:,}",
            moment(latest.created_at),
        )
    console.print(table)


@app.command("log")
def log(name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """List a dataset's versions: message, author, time, size, rows.

    Example: loopline data log credit
    """
    from rich.table import Table

    from loopline import data

    _open()
    table = Table("Version", "Hash", "Message", "Author", "Created", "Files", "Size", "Rows")
    table.title = f"Versions of {name}"
    for version in data.log(name):
        table.add_row(
            str(version.version),
            version.manifest_hash[:10],
            version.message or "",
            version.author,
            moment(version.created_at),
            str(version.file_count),
            size(version.total_size),
            "" if version.row_count is None else f"{version.row_count:,}",
        )
    console.print(table)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@3, NAME@latest or NAME@<hash prefix>."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a version: files, schema, profile summary and validation results.

    Example: loopline data show credit@2
    """
    from rich.table import Table

    from loopline import data
    from loopline.data.compare import profile_of

    _open()
    version = data.resolve(ref)
    manifest = data.manifest_of(version)
    profile = profile_of(version)
    checks = data.history(version.ref)
    if as_json:
        body = {
            "ref": version.ref,
            "manifest": version.manifest_hash,
            "message": version.message,
            "author": version.author,
            "created_at": version.created_at.isoformat(),
            "files": [
                {"path": e.path, "size": e.file.size, "hash": e.file.hash} for e in manifest.entries
            ],
            "profile": None if profile is None else profile.to_dict(),
            "validations": [
                {"suite": c.suite_name, "success": c.success, "failed": c.failed} for c in checks
            ],
        }
        console.print_json(json.dumps(body))
        return
    console.print(f"[bold]{version.ref}[/]  {version.manifest_hash}")
    console.print(
        f"{version.message or '(no message)'} — {version.author}, {moment(version.created_at)}"
    )
    console.print(f"{version.file_count} files, {size(version.total_size)}, from {version.source}")
    files = Table("Path", "Size", "Content id", title="Files", title_justify="left")
    for entry in manifest.entries[:50]:
        files.add_row(entry.path, size(entry.file.size), entry.file.hash[:16])
    if len(manifest.entries) > 50:
        files.caption = f"... and {len(manifest.entries) - 50} more"
    console.print(files)
    if profile is not None:
        table = Table("Column", "Type", "Nulls", "Distinct", "Min", "Max", "Mean", title="Profile")
        table.title = f"Profile ({profile.row_count:,} rows)"
        for col in profile.stats:
            table.add_row(
                col.name,
                col.type,
                f"{col.nulls:,}",
                f"{col.distinct:,}",
                _cell(col.min),
                _cell(col.max),
                number(col.mean, 4),
            )
        console.print(table)
    for check in checks:
        verdict = "[green]passed[/]" if check.success else f"[red]failed ({check.failed})[/]"
        console.print(f"validation {check.suite_name}: {verdict} at {moment(check.created_at)}")


@app.command("diff")
def diff(
    old: str = typer.Argument(..., help="NAME@a"),
    new: str = typer.Argument(..., help="NAME@b"),
    key: str | None = typer.Option(
        None, "--key", help="Key column: also count added/removed/changed rows."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare two versions: files, schema, row counts, column statistics, rows by key.

    Example: loopline data diff credit@1 credit@2 --key id
    """
    from loopline import data

    _open()
    result = data.diff(old, new, key=key)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    _print_diff(result)


@app.command("get")
def get(
    ref: str = typer.Argument(..., help="NAME@VERSION"),
    dest: Path = typer.Argument(..., help="Folder (or file, for a one-file dataset) to write."),
) -> None:
    """Copy a version anywhere, verifying every file.

    Example: loopline data get credit@2 /tmp/credit-v2.csv
    """
    from loopline import data

    _open()
    with ByteProgress("copying") as bar:
        written = data.get(ref, dest, progress=bar.advance)
    console.print(f"wrote {len(written)} file(s) to {dest}")


@app.command("push")
def push(
    refs: list[str] | None = typer.Argument(None, help="NAME@VERSION ... (default: all versions)."),
    remote: str = typer.Option(..., "--remote", help="e.g. s3://bucket/prefix"),
) -> None:
    """Copy versions to a remote artifact store (only what it lacks).

    Example: loopline data push --remote s3://team-data/loopline
    """
    from loopline import data

    _open()
    with ByteProgress("uploading") as bar:
        result = data.push(remote, refs or (), progress=bar.advance)
    console.print(f"pushed {result.versions} version(s): {size(result.bytes)} sent")


@app.command("pull")
def pull(
    targets: list[str] | None = typer.Argument(
        None, help="Pointer files or NAME@VERSION (default: all)."
    ),
    remote: str = typer.Option(..., "--remote", help="e.g. s3://bucket/prefix"),
) -> None:
    """Fetch versions from a remote artifact store (then `data checkout` them).

    Example: loopline data pull data/credit.loopline --remote s3://team-data/loopline
    """
    from loopline import data

    _open()
    with ByteProgress("downloading") as bar:
        result = data.pull(remote, targets or (), progress=bar.advance)
    console.print(f"pulled {result.versions} version(s): {size(result.bytes)} received")


@app.command("expect")
def expect(
    ref: str = typer.Argument(..., help="The reference version, e.g. credit@1."),
    out: Path | None = typer.Option(None, "--out", help="Write the suite as YAML here."),
    key: list[str] | None = typer.Option(None, "--key", help="Key column(s) that must be unique."),
    margin: float = typer.Option(0.1, "--margin", help="Widen ranges by this share."),
) -> None:
    """Infer an expectation suite (types, nulls, ranges, categories, keys, row count).

    Example: loopline data expect credit@1 --out suite.yaml --key id
    """
    from loopline import data

    _open()
    suite = data.expect(ref, key_columns=tuple(key or ()), margin=margin, out=out)
    if out is None:
        console.print(suite.to_yaml(), markup=False, highlight=False)
    else:
        console.print(f"wrote {len(suite.expectations)} expectations to {out}")


@app.command("validate")
def validate(
    ref: str = typer.Argument(..., help="The version to check, e.g. credit@2."),
    suite: Path = typer.Option(..., "--suite", help="Expectation suite YAML."),
    report: Path | None = typer.Option(None, "--report", help="Write an HTML report here."),
) -> None:
    """Validate a version against a suite; exit code 1 when an expectation fails.

    Example: loopline data validate credit@2 --suite suite.yaml --report dq.html
    """
    from loopline import data

    _open()
    result = data.validate(ref, suite, report=report)
    _print_validation(result)
    if report is not None:
        console.print(f"report: {report}")
    if not result.success:
        raise typer.Exit(1)


def _print_validation(result: ValidationResult) -> None:
    from rich.table import Table

    verdict = "[green]PASSED[/]" if result.success else "[red]FAILED[/]"
    console.print(
        f"{verdict}: {result.evaluated - len(result.failures)}/{result.evaluated} expectations "
        f"met on {result.checked_rows:,} rows"
    )
    if result.failures:
        table = Table("Expectation", "Column", "Failed", "Message", "Examples", title="Failures")
        for failure in result.failures:
            table.add_row(
                failure.expectation.kind,
                failure.expectation.column or "(table)",
                f"{failure.failed_count:,}",
                failure.message,
                _examples(failure.expectation.column, failure.examples),
            )
        console.print(table)


def _examples(column: str | None, examples: list[dict[str, object]], limit: int = 3) -> str:
    """`row 3: -1.0; row 7: -2.5` — the failing value of each example row, not the row."""
    shown = []
    for example in examples[:limit]:
        value = example.get(column, "") if column else ""
        shown.append(f"row {example.get('row', '?')}" + (f": {value}" if column else ""))
    more = "; …" if len(examples) > limit else ""
    return "; ".join(shown) + more


def _print_diff(result: DatasetDiff) -> None:
    from rich.table import Table

    console.print(f"[bold]{result.old.ref}[/] -> [bold]{result.new.ref}[/]")
    if result.identical:
        console.print("identical content")
        return
    for label, paths, style in (
        ("added", result.added, "green"),
        ("removed", result.removed, "red"),
        ("changed", result.changed, "yellow"),
    ):
        for path in paths[:50]:
            console.print(f"  [{style}]{label:8}[/] {path}")
        if len(paths) > 50:
            console.print(f"  ... {len(paths) - 50} more {label}")
    if result.old.row_count is not None or result.new.row_count is not None:
        console.print(f"rows: {result.old.row_count} -> {result.new.row_count}")
    if result.schema is not None:
        for column in result.schema.added:
            console.print(f"  [green]+ column[/] {column.name} ({column.type})")
        for column in result.schema.removed:
            console.print(f"  [red]- column[/] {column.name} ({column.type})")
        for name, before, after in result.schema.retyped:
            console.print(f"  [yellow]~ column[/] {name}: {before} -> {after}")
    moved = [s for s in result.shifts if s.old.to_dict() != {**s.new.to_dict(), "name": s.column}]
    if len(moved) < len(result.shifts):
        console.print(f"{len(result.shifts) - len(moved)} column(s) with identical statistics")
    if moved:
        table = Table("Column", "Mean old", "Mean new", "Shift (std)", "Null rate Δ", "Distinct Δ")
        table.title = "Column statistics"
        for shift in moved:
            table.add_row(
                shift.column,
                number(shift.old.mean, 4),
                number(shift.new.mean, 4),
                number(shift.mean_shift_std, 3),
                number(shift.null_rate_change, 3),
                str(shift.distinct_change),
            )
        console.print(table)
    if result.rows is not None:
        rows = result.rows
        console.print(
            f"rows by {rows.key}: [green]+{rows.added:,}[/] [red]-{rows.removed:,}[/] "
            f"[yellow]~{rows.changed:,}[/] ={rows.unchanged:,}"
        )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return number(value, 4)
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"
