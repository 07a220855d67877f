"""What `deploy show` and `deploy ls` print of the servers that serve a deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.cli._output import console, moment

if TYPE_CHECKING:
    from loopline.serving.servers import ServerStatus


def print_servers(statuses: list[ServerStatus], current_revision: int) -> None:
    """A line per server: where, what it serves against the current revision, last seen."""
    if not statuses:
        console.print("  servers   none running (`loopline deploy serve NAME` starts one)")
        return
    for i, status in enumerate(statuses):
        label = "servers" if i == 0 else ""
        where = f"{status.address} on {status.host}, pid {status.pid}"
        if not status.live:
            colour = "dim"
        elif status.up_to_date:
            colour = "green"
        else:
            colour = "yellow"
        mark = "" if status.up_to_date or not status.live else "⚠ "
        console.print(f"  {label:<9} {where}", highlight=False, markup=False)
        console.print(f"            [{colour}]{mark}{_escape(status.summary())}[/]")
        seen = moment(status.last_seen)
        console.print(f"            last seen {seen}, up since {moment(status.started_at)}")
    if any(s.live and not s.up_to_date for s in statuses):
        console.print(
            f"  [yellow]the deployment is at revision {current_revision}; not every live "
            "server serves it (the server log has the details)[/]"
        )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
