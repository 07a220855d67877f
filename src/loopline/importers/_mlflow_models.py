"""Registered MLflow models: each version re-packaged safely, or kept as files and marked.

A version is re-packaged (a loopline sklearn package, registered as the next version of
the model, tagged `mlflow.version`) only when MLflow saved it with skops and the file
loads trusting loopline's default types: nothing from the source is unpickled. Any
other version (a cloudpickle or pickle sklearn model, another flavor) keeps its files
as artifacts of its run under `mlflow-models/NAME/vN/`, and the run's tag
`loopline.import.not_repackaged` says which version and why. Loopline numbers its
versions itself, so aliases are moved by the `mlflow.version` tag, not the number.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.errors import LooplineError, NotFound, UnsafeModel
from loopline.importers._mlflow_files import files_under
from loopline.importers._mlflow_records import MlflowSource, SourceModel, SourceModelVersion
from loopline.project import Stores
from loopline.store import Direction, LinkKind, ModelVersion

log = logging.getLogger(__name__)

VERSION_TAG = "mlflow.version"
NOT_REPACKAGED = "loopline.import.not_repackaged"


@dataclass
class ModelOutcome:
    repackaged: list[str] = field(default_factory=list)  # "name/N"
    kept: list[str] = field(default_factory=list)  # "name/N: why"
    unchanged: int = 0
    planned: list[str] = field(default_factory=list)  # a dry run's "name/N"
    aliases: int = 0
    failed: list[str] = field(default_factory=list)  # "name/N: error"


def import_model(
    model: SourceModel,
    source: MlflowSource,
    run_ids: dict[str, str],
    opened: Stores,
    outcome: ModelOutcome,
    *,
    dry_run: bool = False,
) -> None:
    """Bring `model`'s versions, aliases, description and tags over; `run_ids` maps
    MLflow run ids to the imported runs (a version of a run not imported is skipped)."""
    imported = _imported_versions(model.name, opened)
    for version in model.versions:
        label = f"{model.name}/{version.version}"
        run_id = run_ids.get(version.run_id or "")
        if version.run_id and run_id is None:
            continue  # its run was not imported (another experiment, or it failed)
        if version.version in imported:
            outcome.unchanged += 1
        elif dry_run:
            outcome.planned.append(label)
        elif _kept_before(run_id, label, opened):
            outcome.unchanged += 1
        else:
            _import_version(version, source, run_id, opened, outcome, imported)
    if dry_run or not imported:
        return
    try:
        _model_details(model, opened)
        _aliases(model, imported, opened, outcome)
    except LooplineError as exc:  # a name or tag loopline refuses: said, and the rest goes on
        outcome.failed.append(f"{model.name}: {exc.message}")


def _aliases(
    model: SourceModel, imported: dict[int, ModelVersion], opened: Stores, outcome: ModelOutcome
) -> None:
    from loopline.registry import set_alias

    for alias, number in sorted(model.aliases.items()):
        target = imported.get(number)
        if target is None or alias in opened.metadata.models.aliases_of(target.id):
            continue
        set_alias(target, alias, reason="imported from MLflow", opened=opened)
        outcome.aliases += 1


def _import_version(
    version: SourceModelVersion,
    source: MlflowSource,
    run_id: str | None,
    opened: Stores,
    outcome: ModelOutcome,
    imported: dict[int, ModelVersion],
) -> None:
    """Re-package the version, or keep its files; a failure is listed in `outcome`."""
    label = f"{version.name}/{version.version}"
    try:
        with tempfile.TemporaryDirectory(prefix="loopline-mlflow-model-") as scratch:
            folder = source.download_model(version, Path(scratch))
            estimator, why = _safe_estimator(folder)
            if estimator is not None:
                imported[version.version] = _register(estimator, version, run_id)
                outcome.repackaged.append(label)
                return
            if run_id is None:
                raise NotFound(f"not re-packaged ({why}) and it has no imported run to keep it")
            _keep_files(folder, version, run_id, why, opened)
    except LooplineError as exc:
        outcome.failed.append(f"{label}: {exc.message}")
        return
    outcome.kept.append(f"{label}: {why}")


def _safe_estimator(folder: Path) -> tuple[Any, str]:
    """The version's scikit-learn estimator, loaded safely, or None and the reason."""
    import yaml

    from loopline.packaging import load_estimator

    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, f"no readable MLmodel file ({type(exc).__name__})"
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    sklearn = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(sklearn, dict):
        names = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        return None, f"flavors {names}: only scikit-learn saved with skops is re-packaged"
    form = sklearn.get("serialization_format", "cloudpickle")
    if form != "skops":
        return None, f"scikit-learn saved as {form}: loading it would unpickle untrusted data"
    data_file = folder / str(sklearn.get("pickled_model", "model.skops"))
    if data_file.parent != folder or not data_file.is_file():
        return None, "the skops file named by MLmodel is missing"
    try:
        return load_estimator(data_file.read_bytes(), []), ""
    except UnsafeModel as exc:
        return None, f"skops file holds types loopline does not trust: {exc.message}"
    except LooplineError as exc:
        return None, exc.message


def _register(estimator: Any, version: SourceModelVersion, run_id: str | None) -> ModelVersion:
    from loopline.models import log_model

    tags = {VERSION_TAG: str(version.version), **version.tags}
    if version.stage and version.stage != "None":
        tags["mlflow.stage"] = version.stage
    if version.user:
        tags["mlflow.user_id"] = version.user
    return log_model(
        estimator,
        version.name,
        run_id=run_id,
        artifact_path=f"mlflow-models/{version.name}/v{version.version}",
        description=version.description or None,
        tags=tags,
    )


def _keep_files(
    folder: Path, version: SourceModelVersion, run_id: str, why: str, opened: Stores
) -> None:
    prefix = f"mlflow-models/{version.name}/v{version.version}/"
    links = []
    for logical, path in files_under(folder, prefix):
        blob = opened.artifacts.put_file(path)
        links.append((logical, blob.hash, blob.size))
    runs = opened.metadata.runs
    runs.add_links(run_id, Direction.OUTPUT, LinkKind.ARTIFACT, links)
    earlier = runs.get_run(run_id).tags.get(NOT_REPACKAGED, "")
    note = f"{version.name}/{version.version}: {why}; files under {prefix}"
    runs.set_tags(run_id, {NOT_REPACKAGED: "\n".join(filter(None, [earlier, note]))})


def _kept_before(run_id: str | None, label: str, opened: Stores) -> bool:
    if run_id is None:
        return False
    notes = opened.metadata.runs.get_run(run_id).tags.get(NOT_REPACKAGED, "")
    return any(line.startswith(label + ":") for line in notes.splitlines())


def _imported_versions(name: str, opened: Stores) -> dict[int, ModelVersion]:
    """MLflow version number -> the loopline version imported from it."""
    try:
        versions = opened.metadata.models.list_versions(name)
    except NotFound:
        return {}
    found = {}
    for version in versions:
        number = version.tags.get(VERSION_TAG, "")
        if number.isdigit():
            found[int(number)] = version
    return found


def _model_details(model: SourceModel, opened: Stores) -> None:
    current = opened.metadata.models.get_model(model.name)
    wanted_tags = {k: v for k, v in model.tags.items() if current.tags.get(k) != v}
    description = model.description or None
    if description == current.description:
        description = None
    if description is None and not wanted_tags:
        return
    from loopline.registry import describe_model

    describe_model(model.name, description=description, tags=wanted_tags or None)
