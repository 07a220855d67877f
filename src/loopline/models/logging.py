"""`log_model`: package a trained model, store it, and register it as a new version
linked to the active run (and through the run to its data versions and code)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.config import current_user
from loopline.errors import UnsafeModel
from loopline.lineage import active_run_id
from loopline.models._examples import example_extra
from loopline.models._packages import check_artifact_path, store_package
from loopline.packaging import check_trusted, load_model, save_model
from loopline.project import Stores, stores
from loopline.store import Direction, LinkKind, ModelVersion, check_model_name

if TYPE_CHECKING:
    from loopline.packaging import Signature

log = logging.getLogger(__name__)


def log_model(
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    signature: Signature | None = None,
    flavor: str | None = None,
    artifact_path: str = "model",
    requirements: list[str] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    run_id: str | None = None,
    trusted: list[str] | None = None,
) -> ModelVersion:
    """Package `model` and register it as the next version of model `name`.

    Inside a run (or with `run_id`), the package is also the run's artifact folder
    `artifact_path` (so `runs:/<id>/model` names it) and the version is linked to the
    run. `input_example` (a few rows) gives the signature: column names and types.

    A scikit-learn model is loaded back before it is registered, trusting the defaults
    and `trusted` (type names you reviewed, e.g. a custom transformer's class): the
    version is refused (UnsafeModel, naming the types to review) if it holds any other
    type. `trusted` is recorded with the version and in the audit log, and every later
    load of the version (predict, evaluate, export, serve) trusts it again.

    Example:
        with ll.start_run(experiment="churn"):
            version = ll.models.log_model(clf, name="churn", input_example=X[:5])
    """
    check_model_name(name)
    artifact_path = check_artifact_path(artifact_path)
    trusted = check_trusted(trusted)
    opened = stores()
    run = run_id or active_run_id()
    if run is not None:
        run = opened.metadata.runs.resolve_run_id(run)
    with tempfile.TemporaryDirectory(prefix="loopline-model-") as scratch:
        folder = Path(scratch) / "package"
        manifest = save_model(
            model,
            folder,
            flavor=flavor,
            input_example=input_example,
            signature=signature,
            requirements=requirements,
            metadata=metadata,
        )
        _check_loads(folder, name, manifest.flavor, trusted)
        package = store_package(folder, opened)
    extra: dict[str, Any] = {"artifact_path": artifact_path}
    if trusted:
        extra["trusted"] = trusted
    extra.update(example_extra(input_example))  # reference rows for a later ONNX parity check
    version = register_package(
        name,
        package.hash,
        manifest.to_dict(),
        size=package.size,
        run_id=run,
        extra=extra,
        description=description,
        tags=tags,
        opened=opened,
    )
    if run is not None:
        links = [
            (f"{artifact_path}/{path}", blob, size) for path, (blob, size) in package.files.items()
        ]
        opened.metadata.runs.add_links(run, Direction.OUTPUT, LinkKind.ARTIFACT, links)
    log.info("registered %s (%s, %d bytes)", version.ref, version.flavor, version.size_bytes)
    return version


def _check_loads(folder: Path, name: str, flavor: str, trusted: list[str]) -> None:
    """A scikit-learn package must load with the given trust, or it is not registered.

    Only this flavor holds types to trust (the others are one library's native format,
    or a pickle, which loads only with allow_pickle).
    """
    if flavor != "sklearn":
        return
    try:
        load_model(folder, trusted=trusted)
    except UnsafeModel as exc:
        raise UnsafeModel(
            f"model {name!r} was not logged: its {exc.message}", hint=exc.hint
        ) from exc


def register_package(
    name: str,
    package_hash: str,
    manifest: dict[str, Any],
    *,
    size: int,
    opened: Stores,
    run_id: str | None = None,
    source_version_id: str | None = None,
    extra: dict[str, Any] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> ModelVersion:
    """Record a stored package as the next version of `name`, linked to its run."""
    version = opened.metadata.models.create_version(
        name,
        flavor=str(manifest["flavor"]),
        package_hash=package_hash,
        size_bytes=size,
        signature=dict(manifest.get("signature") or {}),
        manifest=manifest,
        created_by=current_user(),
        run_id=run_id,
        source_version_id=source_version_id,
        extra=extra,
        description=description,
        tags=tags,
    )
    if run_id is not None:
        opened.metadata.runs.add_links(
            run_id, Direction.OUTPUT, LinkKind.MODEL_VERSION, [(version.ref, version.id, size)]
        )
    return version
