"""Datasets: versioning, profiles, validation."""

from loopline.data._manifest import Manifest
from loopline.data._manifest import load as read_manifest
from loopline.data.checkout import CheckoutResult, checkout, get
from loopline.data.compare import DatasetDiff, diff, profile_of
from loopline.data.load import load
from loopline.data.quality import (
    expect,
    history,
    latest_validations,
    read_validation,
    validate,
)
from loopline.data.remote import TransferResult, pull, push
from loopline.data.versions import (
    AddResult,
    add,
    list_datasets,
    log,
    manifest_of,
    parse_ref,
    resolve,
)

__all__ = [
    "AddResult",
    "CheckoutResult",
    "DatasetDiff",
    "Manifest",
    "TransferResult",
    "add",
    "checkout",
    "diff",
    "expect",
    "get",
    "history",
    "latest_validations",
    "list_datasets",
    "load",
    "log",
    "manifest_of",
    "parse_ref",
    "profile_of",
    "pull",
    "push",
    "read_manifest",
    "read_validation",
    "resolve",
    "validate",
]
