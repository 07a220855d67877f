"""`loopline artifacts ...`: listing and fetching a run's files."""

from __future__ import annotations

from pathlib import Path

import typer

from loopline.cli._output import console, size

app = typer.Typer(help="Files stored by runs.", no_args_is_help=True)


@app.command("ls")
def list_artifacts(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    path: str = typer.Argument("", help="Only files under this folder."),
) -> None:
    """List a run's artifacts with size and content hash.

    Example: loopline artifacts ls 3f2a plots
    """
    from rich.table import Table

    from loopline.cli._project import open_project
    from loopline.tracking import list_artifacts as fetch

    open_project()
    links = fetch(run, path or None)
    table = Table("Path", "Size", "BLAKE3", title=f"Artifacts of run {run}")
    for link in links:
        table.add_row(link.name, size(link.size), link.ref[:16])
    console.print(table)


@app.command("get")
def get(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    path: str = typer.Argument(..., help="Artifact file or folder, e.g. plots/roc.png."),
    dest: Path = typer.Argument(Path("."), help="Folder to write into."),
) -> None:
    """Download an artifact (file or folder) into DEST, verifying every hash.

    Example: loopline artifacts get 3f2a plots ./out
    """
    from loopline.cli._project import open_project
    from loopline.tracking import download_artifacts

    open_project()
    written = download_artifacts(run, path, dest)
    for file in written:
        console.print(f"wrote {file}")
