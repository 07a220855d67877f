"""`loopline init` and `loopline db ...`: creating a project and its database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopline.cli._output import console

if TYPE_CHECKING:
    from loopline.client import Client

db = typer.Typer(help="The metadata database.", no_args_is_help=True)


def open_project(*, metadata: bool = True) -> Client:
    """The Client of the project around the working directory (or fail clearly), bound
    for the rest of the command: the core functions it calls use its stores.

    The metadata store opens now, so a wrong or missing database is reported before any
    work; `metadata=False` leaves it to first use (`data add`, which may not need it).
    """
    from loopline.cli._clients import use_client
    from loopline.client import Client
    from loopline.config import load_settings

    settings = load_settings(require_project=True)
    client = use_client(Client(project=settings.root))
    if metadata:
        _ = client.stores.metadata
    return client


def init(
    directory: Path = typer.Argument(Path("."), help="Where to create the project."),
) -> None:
    """Create loopline.toml and .loopline/ (SQLite database + artifact folder).

    With LOOPLINE_STORE_URI set, loopline.toml names that database instead, without its
    password (which stays in the variable). Example: loopline init
    """
    import os

    from loopline.client import Client
    from loopline.config import CONFIG_FILE, init_project, shareable_store_uri
    from loopline.redact import redact_uri

    env_uri = os.environ.get("LOOPLINE_STORE_URI") or None
    existed = (directory / CONFIG_FILE).exists()
    config = init_project(directory, store_uri=env_uri)
    if env_uri is not None and not existed and shareable_store_uri(env_uri) != env_uri:
        console.print(
            f"{config} names the store without its secrets; keep LOOPLINE_STORE_URI set "
            "(with the password) when you run loopline",
            markup=False,
        )
    with Client(project=config.parent) as client:
        database = client.stores.metadata  # creates (and migrates) the database now
        console.print(f"Initialized loopline project in [bold]{config.parent}[/]")
        console.print(f"  metadata:  {redact_uri(database.uri)}", markup=False)
        console.print(f"  artifacts: {redact_uri(client.settings.artifact_uri)}", markup=False)


@db.command("upgrade")
def upgrade(
    create: bool = typer.Option(
        False,
        "--create",
        help="First create the PostgreSQL database the store URI names, if it does not "
        "exist (with the URI's credentials). SQLite files are always created.",
    ),
) -> None:
    """Apply pending schema migrations (they also run on open).

    Example: loopline db upgrade --create
    """
    from loopline.config import load_settings
    from loopline.redact import redact_uri
    from loopline.store._database import create_database
    from loopline.store.metadata import MetadataStore

    settings = load_settings(require_project=True)
    if settings.server is not None:
        from loopline.errors import InvalidInput

        raise InvalidInput(
            f"this project's records are on the server at {redact_uri(settings.server)}",
            hint="run `loopline db upgrade` where the server runs",
        )
    if create and create_database(settings.store_uri):
        console.print(f"Created database: {redact_uri(settings.store_uri)}", markup=False)
    store = MetadataStore(settings.store_uri)
    store.close()
    shown = redact_uri(settings.store_uri)
    console.print(f"Metadata store is at the latest schema: {shown}", markup=False)
