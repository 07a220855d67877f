"""`loopline tokens ...`: the platform server's API tokens (create, ls, revoke)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from loopline.cli._output import console, err, moment

if TYPE_CHECKING:
    from loopline.store.tokens import TokenStore

app = typer.Typer(help="API tokens of the platform server (loopline server).", no_args_is_help=True)


def _tokens() -> TokenStore:
    from loopline.cli._project import open_project

    return open_project().stores.metadata.tokens


@app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="Who the token acts as (recorded on changes)."),
    role: str = typer.Option(
        ...,
        "--role",
        metavar="[reader|writer|deployer|approver|admin]",
        help="What the token may do; each role includes the ones before it.",
    ),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime such as 30m, 12h, 90d or 2w; default: no expiry."
    ),
) -> None:
    """Create a token and print it once (only its hash is stored).

    Clients send it as `Authorization: Bearer TOKEN` (LOOPLINE_TOKEN, or
    MLFLOW_TRACKING_TOKEN for mlflow). Example: loopline tokens create --user alice
    --role writer --expires 90d
    """
    from loopline.config import current_user
    from loopline.store.tokens import check_role, check_user, parse_lifetime

    check_user(user)
    check_role(role)
    lifetime = None if expires is None else parse_lifetime(expires)
    record, token = _tokens().create(user, role, created_by=current_user(), lifetime=lifetime)
    print(token)
    until = "never expires" if record.expires_at is None else f"expires {moment(record.expires_at)}"
    err.print(
        f"token {record.id} for {record.user} ({record.role}), {until}; "
        "it is shown only now: store it somewhere safe",
        soft_wrap=True,
    )


@app.command("ls")
def list_tokens(
    as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table."),
) -> None:
    """List tokens: id, user, role, created, expires, last used, revoked (never a token).

    Example: loopline tokens ls
    """
    tokens = _tokens().list_tokens()
    if as_json:
        print(json.dumps([token.to_dict() for token in tokens], indent=2))
        return
    from rich.table import Column, Table

    table = Table(  # the id is what `tokens revoke` takes: never cut short
        Column("ID", no_wrap=True, min_width=12),
        "User",
        "Role",
        "Created",
        "Expires",
        "Last used",
        "Revoked",
        title="Tokens",
    )
    for token in tokens:
        table.add_row(
            token.id,
            token.user,
            token.role,
            moment(token.created_at),
            moment(token.expires_at) if token.expires_at else "never",
            moment(token.last_used_at) if token.last_used_at else "-",
            moment(token.revoked_at) if token.revoked_at else "-",
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token's id (see tokens ls).")) -> None:
    """Revoke a token; a running server refuses it within a few seconds.

    Example: loopline tokens revoke 3f9a1c0b7d2e
    """
    from loopline.config import current_user
    from loopline.store.tokens import check_token_id

    record = _tokens().revoke(check_token_id(token_id), actor=current_user())
    console.print(f"revoked token {record.id} of {record.user} ({record.role})")
