"""Loading a registered model by reference, verified and safe by default."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from blake3 import blake3

from loopline.errors import CorruptedData
from loopline.models._packages import StoredPackage, materialize, read_package
from loopline.packaging import MANIFEST_NAME, load_model
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
    load through skops and refuse types outside the defaults and `trusted`; pickled
    models load only with `allow_pickle=True`.

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
    folder = materialize(version.package_hash, opened)
    try:
        _check_manifest(folder, read_package(version.package_hash, opened))
        return load_model(folder, trusted=trusted, allow_pickle=allow_pickle)

    except CorruptedData as exc:
        # The cache is our own copy; the store's blobs are verified on every read, so a
        # damaged cached file is replaced from them (a damaged blob still fails here).
        log.warning("cached copy of %s is damaged (%s); fetching it again", version.ref, exc)
        folder = materialize(version.package_hash, opened, refresh=True)
        return load_model(folder, trusted=trusted, allow_pickle=allow_pickle)


def _check_manifest(folder: Path, package: StoredPackage) -> None:
    """The cached manifest must be the stored one: its file hashes are what every model
    file is checked against, so it must not be editable in the cache."""
    expected = package.files.get(MANIFEST_NAME)
    manifest = folder / MANIFEST_NAME
    if expected is None:
        raise CorruptedData(f"model package {package.hash} has no {MANIFEST_NAME}")
    if not manifest.is_file() or blake3(manifest.read_bytes()).hexdigest() != expected[0]:
        raise CorruptedData(f"{MANIFEST_NAME} in {folder} does not match the stored package")
