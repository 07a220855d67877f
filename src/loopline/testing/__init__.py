"""The metadata-store conformance suite, in the spirit of scikit-learn's check_estimator.

Every back-end (SQLite, PostgreSQL, and later the remote client) must pass
`check_store(make_store)`, where `make_store()` returns a store on an empty database.
Each check is also available alone in `STORE_CHECKS`, so a test suite can parametrize
over them and report failures one by one. The checks use only the stores' public
methods (`store.datasets`, `.models`, `.deployments`, `.predictions`, `.reviews`,
`.audit`, `.monitoring`, `.servers` and the runs methods): what a client of any kind
must answer alike.
"""

from __future__ import annotations

from collections.abc import Callable

from loopline.store import MetadataStore
from loopline.testing import (
    _audit,
    _datasets,
    _deployments,
    _models,
    _monitoring,
    _predictions,
    _reviews,
    _run_pages,
    _tracking,
)
from loopline.testing._common import Check

__all__ = ["STORE_CHECKS", "Check", "check_store"]

STORE_CHECKS: list[Check] = [
    *_tracking.CHECKS,
    *_run_pages.CHECKS,
    *_models.CHECKS,
    *_datasets.CHECKS,
    *_deployments.CHECKS,
    *_predictions.CHECKS,
    *_reviews.CHECKS,
    *_audit.CHECKS,
    *_monitoring.CHECKS,
]


def check_store(make_store: Callable[[], MetadataStore]) -> None:
    """Run every conformance check, each on a fresh store; raises AssertionError."""
    for check in STORE_CHECKS:
        store = make_store()
        try:
            check(store)
        finally:
            store.close()
