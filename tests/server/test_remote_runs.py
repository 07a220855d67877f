"""The runs store through the platform server: the conformance checks of the runs area
against `RemoteRunStore` over a real port, on SQLite and PostgreSQL behind the server;
bad input to the HTTP routes (404, 400, 422 naming the row, traversal-looking names);
and who may write."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.store.remote import RemoteMetadataStore
from loopline.testing import _tracking


@pytest.mark.parametrize("check", _tracking.CHECKS, ids=lambda check: check.__name__)
def test_runs_conformance_through_the_server(
    check: Any, platform_server: Any, served_stores: Any
) -> None:
    with platform_server.serving(served_stores) as url:
        store = RemoteMetadataStore(url)
        try:
            check(store)
        finally:
            store.close()
