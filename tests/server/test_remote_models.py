"""The model registry and reviews through the platform server: the conformance checks
of `loopline.testing` against the remote store on both back-ends, and the HTTP API's
answers to bad input and to callers without the role a change needs."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.testing import _models, _reviews
from loopline.testing._common import Check
from server._remote_stores import remote_store


@pytest.mark.parametrize("check", [*_models.CHECKS, *_reviews.CHECKS], ids=lambda c: c.__name__)
def test_registry_conformance_through_the_server(
    check: Check, platform_server: Any, served_stores: Any
) -> None:
    with remote_store(platform_server, served_stores) as store:
        check(store)
