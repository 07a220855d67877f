"""`loopline init` and `loopline db ...`: creating a project and its database."""

from __future__ import annotations

from pathlib import Path

import typer

from loopline.cli._output import console

db = typer.Typer(help="The metadata database.", no_args_is_help=True)


def open_project() -> None:
    """Point the library at the project around the working directory (or fail clearly)."""
    from loopline.config import load_settings
    from loopline.project import configure

    settings = load_settings(require_project=True)
    configure(project=settings.root)


def init(
    directory: Path = typer.Argument(Path("."), help="Where to create the project."),
) -> None:
    """Create loopline.toml and .loopline/ (SQLite database + artifact folder).

    Example: loopline init
    """
    from loopline.config import init_project
    from loopline.project import configure
    from loopline.redact import redact_uri

    config = init_project(directory)
    opened = configure(project=config.parent)
    console.print(f"Initialized loopline project in [bold]{config.parent}[/]")
    console.print(f"  metadata:  {redact_uri(opened.settings.store_uri)}", markup=False)
    console.print(f"  artifacts: {redact_uri(opened.settings.artifact_uri)}", markup=False)


@db.command("upgrade")
def upgrade() -> None:
    """Apply pending schema migrations (they also run on open).

    Example: loopline db upgrade
    """
    from loopline.config import load_settings
    from loopline.redact import redact_uri
    from loopline.store.metadata import MetadataStore

    settings = load_settings(require_project=True)
    store = MetadataStore(settings.store_uri)
    store.close()
    shown = redact_uri(settings.store_uri)
    console.print(f"Metadata store is at the latest schema: {shown}", markup=False)
