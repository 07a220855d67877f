"""The platform server: the whole API over HTTP, for a team that shares one loopline.

`create_app(opened)` builds the FastAPI application over a project's stores. Every route
declares its permission (`requires(Role.X)` or `public()`, see _permissions); the routes
live in `server.api`, one module per area, each with a `router`. The server is a face, like
the CLI: it parses, calls the core and formats; nothing below imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.server.app import create_app


def __getattr__(name: str) -> object:  # FastAPI is imported on first use
    if name == "create_app":
        from loopline.server.app import create_app

        return create_app
    raise AttributeError(name)


__all__ = ["create_app"]
