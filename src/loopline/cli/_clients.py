"""The Client a command runs through: opened by `open_project`, closed when the command ends.

The root callback registers `close_clients` on the command's context, so a command run by
`loopline.cli.app.run` or by Typer's test runner never leaves its client bound after it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.client import Client

_open = ExitStack()  # this command's clients and their bindings, undone in reverse


def use_client(client: Client) -> Client:
    """Bind `client` for the rest of the command: the core functions use its stores."""
    _open.enter_context(client)
    _open.enter_context(client.bound())
    return client


def close_clients() -> None:
    """Unbind and close the clients of the command that ended."""
    _open.close()
