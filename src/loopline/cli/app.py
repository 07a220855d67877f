"""The root command, its sub-apps, and the one error handler."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING

import typer
import typer.core
import typer.main

if TYPE_CHECKING:  # the types TyperGroup's methods are declared with (Typer vendors click)
    from typer._click import Command, Context

from loopline._version import __version__
from loopline.cli._output import err
from loopline.errors import LooplineError

# The root's commands in `--help` order (commands, then groups, as Typer listed them):
# name -> (module in loopline.cli, attribute, *modules that add commands to it), the
# attribute a command function or a Typer sub-app. A module is imported, and its commands
# built, only when one of its commands runs (the root `--help` lists them all): `loopline
# data add` neither imports nor builds the models, deploy or serving commands (~20-40 ms
# of a start-up). A new command goes here.
COMMANDS = {
    "init": ("_project", "init"),
    "gate": ("_promotion", "gate"),
    "serve": ("_serving", "serve"),
    "predict": ("_batch", "predict"),
    "fsck": ("_maintenance", "fsck"),
    "gc": ("_maintenance", "gc"),
    "trace": ("_trace", "trace"),
    "db": ("_project", "db"),
    "experiments": ("_experiments", "app"),
    "runs": ("_runs", "app"),
    "artifacts": ("_artifacts", "app"),
    "data": ("_data", "app"),
    "models": ("_models", "app", "_promotion"),  # evaluate, promote, approve
    "audit": ("_promotion", "audit"),
    "deploy": ("_deploy", "app"),
    "monitor": ("_monitor", "app", "_loop"),  # watch, alerts
    "loop": ("_loop", "app"),
    "server": ("_server", "server"),
    "ui": ("_server", "ui"),
    "tokens": ("_tokens", "app"),
    "import": ("_import", "app"),
}


class _LazyGroup(typer.core.TyperGroup):
    """The root group: builds a command of COMMANDS on first look-up."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [
            *super().list_commands(ctx),
            *(name for name in COMMANDS if name not in self.commands),
        ]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in COMMANDS:
            found = self.commands[cmd_name] = _build(cmd_name)
        return found

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # a typo: Typer suggests from built commands
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _build(name: str) -> Command:
    """The click command of COMMANDS[name], built as `add_typer`/`command` on the root would."""
    module, attribute, *also = COMMANDS[name]
    target = getattr(import_module(f"loopline.cli.{module}"), attribute)
    for extra in also:
        import_module(f"loopline.cli.{extra}")
    holder = typer.Typer(
        rich_markup_mode=app.rich_markup_mode,
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
    )
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


app = typer.Typer(
    name="loopline",
    cls=_LazyGroup,
    help="loopline: versioned data, tracked experiments, gated models, one lineage graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: Typer's Rich help formatter imports ~90 ms of modules (Markdown, syntax
    # highlighting) and `loopline --help` must start fast. Rich still prints our output.
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"loopline {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """loopline: versioned data, tracked experiments, gated models, one lineage graph."""
    from loopline.cli._clients import close_clients

    ctx.call_on_close(close_clients)  # the command's Client (see open_project)
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
