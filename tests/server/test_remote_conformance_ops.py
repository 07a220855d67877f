"""The conformance checks of deployments, predictions and the audit log through a real
platform server on a real port, on each back-end behind it."""

from __future__ import annotations

import pytest

from loopline.store.remote import RemoteMetadataStore
from loopline.testing import Check, _audit, _deployments, _monitoring, _predictions

CHECKS = [*_deployments.CHECKS, *_predictions.CHECKS, *_audit.CHECKS, *_monitoring.CHECKS]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_conformance_through_the_server(platform_server, served_stores, check: Check) -> None:  # type: ignore[no-untyped-def]
    with platform_server.serving(served_stores) as url:
        remote = RemoteMetadataStore(url)
        try:
            check(remote)  # type: ignore[arg-type]
        finally:
            remote.close()
