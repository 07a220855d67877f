"""`loopline experiments ...`."""

from __future__ import annotations

import typer

from loopline.cli._output import console, moment

app = typer.Typer(help="Experiments: named groups of runs.", no_args_is_help=True)


@app.command("ls")
def list_experiments() -> None:
    """List experiments with their number of runs.

    Example: loopline experiments ls
    """
    from rich.table import Table

    from loopline.cli._project import open_project
    from loopline.tracking import list_experiments as fetch

    open_project()
    table = Table("Name", "ID", "Runs", "Created", title="Experiments")
    for exp in fetch():
        table.add_row(exp.name, exp.id[:8], str(exp.run_count or 0), moment(exp.created_at))
    console.print(table)
