"""Fixtures of the server's HTTP tests (the platform server itself: fixtures/remote.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server._remote_stores import api_client


@pytest.fixture(scope="module")
def roles_api(platform_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(client, stores): an httpx client of the platform server serving a fresh SQLite
    project, one per module, to callers who say who they are (`as_role(...)` headers)."""
    with api_client(platform_server, tmp_path_factory.mktemp("roles-api")) as opened:
        yield opened
