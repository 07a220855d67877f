"""The root command, its sub-apps, and the one error handler."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer

from loopline import __version__
from loopline.cli import (
    _artifacts,
    _batch,
    _data,
    _deploy,
    _experiments,
    _maintenance,
    _models,
    _project,
    _promotion,
    _runs,
    _serving,
)
from loopline.cli._output import err
from loopline.errors import LooplineError

app = typer.Typer(
    name="loopline",
    help="loopline: versioned data, tracked experiments, gated models, one lineage graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: Typer's Rich help formatter imports ~90 ms of modules (Markdown, syntax
    # highlighting) and `loopline --help` must start fast. Rich still prints our output.
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(_project.init)
app.add_typer(_project.db, name="db")
app.add_typer(_experiments.app, name="experiments")
app.add_typer(_runs.app, name="runs")
app.add_typer(_artifacts.app, name="artifacts")
app.add_typer(_data.app, name="data")
app.add_typer(_models.app, name="models")
app.command("gate")(_promotion.gate)
app.add_typer(_promotion.audit, name="audit")
app.command("serve")(_serving.serve)
app.add_typer(_deploy.app, name="deploy")
app.command("predict")(_batch.predict)
app.command("fsck")(_maintenance.fsck)
app.command("gc")(_maintenance.gc)


def _version(value: bool) -> None:
    if value:
        print(f"loopline {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """loopline: versioned data, tracked experiments, gated models, one lineage graph."""
    if debug:
        logging.basicConfig(level=logging.DEBUG)


def run(argv: Sequence[str]) -> int:
    """Run the CLI on `argv`; returns the exit code (errors print one line, no trace)."""
    debug = "--debug" in argv
    try:
        # Without standalone mode, click returns a command's `Exit` code instead of raising.
        returned = app(args=list(argv), prog_name="loopline", standalone_mode=False)
    except LooplineError as exc:
        if debug:
            raise
        err.print(f"[red]Error:[/] {exc.message}", soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]Hint: {exc.hint}[/]", soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err.print("Aborted.")
        return 1
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show is not None:
            show(file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if debug:
            raise
        from loopline.redact import redact_text  # a driver's message may quote a URI

        message = redact_text(f"unexpected {type(exc).__name__}: {exc}")
        message += " (run with --debug for the trace)"
        err.print(f"[red]Error:[/] {message}", soft_wrap=True)
        return 1
    return returned if isinstance(returned, int) else 0
