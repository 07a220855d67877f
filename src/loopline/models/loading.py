"""Loading a registered model by reference, verified and safe by default."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from loopline.errors import CorruptedData, InvalidInput
from loopline.models._packages import check_cached, materialize, read_package
from loopline.packaging import check_trusted, load_model, merge_trusted
from loopline.project import Stores, stores
from loopline.registry import ModelRef, ModelVersion, resolve

if TYPE_CHECKING:
    from loopline.packaging import LoadedModel

log = logging.getLogger(__name__)


def load(
    ref: str | ModelRef | ModelVersion,
    *,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
    opened: Stores | None = None,
) -> LoadedModel:
    """The model a reference names, ready to `predict` with its signature enforced.

    `ref`: "models:/churn@champion", "churn/3", "churn" (latest) or "runs:/<id>/model".
    Every file is checked against the package's manifest hashes; scikit-learn models
    load through skops and refuse types outside the defaults, those trusted when the
    version was logged and `trusted`; pickled models load only with `allow_pickle=True`.

    Example:
        model = ll.models.load("models:/churn@champion")
        model.predict(df)
    """
    opened = opened or stores()
    version = resolve(ref, opened=opened)
    return load_version(version, trusted=trusted, allow_pickle=allow_pickle, opened=opened)


def load_version(
    version: ModelVersion,
    *,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
    opened: Stores,
) -> LoadedModel:
    """`load` for a resolved version: from the local cache, repaired if it was altered.

    The types trusted when the version was logged (`log_model(..., trusted=...)`) are
    trusted again; `trusted` adds to them.
    """
    trusted = merge_trusted(recorded_trust(version), check_trusted(trusted))
    package = read_package(version.package_hash, opened)
    folder = materialize(package, opened)
    try:
        check_cached(folder, package)
        return load_model(folder, trusted=trusted, allow_pickle=allow_pickle)
    except CorruptedData as exc:
        # The cache is our own copy; the store's blobs are verified on every read, so a
        # damaged or substituted cached copy is replaced from them (a damaged blob still
        # fails here).
        log.warning("cached copy of %s is damaged (%s); fetching it again", version.ref, exc)
    folder = materialize(package, opened, refresh=True)
    check_cached(folder, package)  # a repair that did not take is an error, never a fallback
    return load_model(folder, trusted=trusted, allow_pickle=allow_pickle)


def recorded_trust(version: ModelVersion) -> list[str]:
    """The types trusted when `version` was logged (none for most versions).

    Raises CorruptedData if the stored list is not a list of type names.
    """
    recorded = version.extra.get("trusted")
    try:
        return check_trusted(recorded)
    except InvalidInput as exc:
        raise CorruptedData(f"{version.ref} has a malformed trusted list: {exc.message}") from exc
