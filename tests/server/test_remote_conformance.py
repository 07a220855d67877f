"""`loopline.testing`'s conformance checks against the remote client: every check of
`STORE_CHECKS` on a `RemoteMetadataStore` over the platform server (a real port), with
each back-end behind it. A check added to `STORE_CHECKS` runs through the server too."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.testing import STORE_CHECKS, Check


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_conformance_through_the_server(remote_store: Any, check: Check) -> None:
    check(remote_store)
