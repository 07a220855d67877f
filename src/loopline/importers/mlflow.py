"""`import_mlflow`: copy an MLflow store (a database or a tracking server) into loopline.

Every run is written with its own times, status, user, params, tags, full metric
history and artifacts in one transaction (`RunStore.import_run`): a run is imported
whole or not at all, and an interrupted import finishes next time. Runs are keyed by
the tag `mlflow.run_id`, with a fingerprint of what was copied
(`loopline.import.fingerprint`): importing again adds nothing, and a run that changed
in MLflow since (new metrics, a new status) is brought up to date. Artifact blobs are
stored before the transaction; if it fails they are unreferenced and `loopline gc`
removes them.

Registered models follow their runs (see `_mlflow_models`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loopline.errors import InvalidInput, InvalidPath, LooplineError, NotFound
from loopline.importers._mlflow_models import ModelOutcome, import_model
from loopline.importers._mlflow_records import MlflowSource, SourceExperiment, SourceRun
from loopline.project import Stores, stores
from loopline.redact import redact_text
from loopline.store import ImportedRun, RunStatus, check_experiment_name

log = logging.getLogger(__name__)

KEY_TAG = "mlflow.run_id"
FINGERPRINT_TAG = "loopline.import.fingerprint"
ARTIFACTS_NOTE = "loopline.import.artifacts"
MAX_TAG = 8000  # the store's limit on a tag value; longer MLflow tags are cut, and said so


@dataclass
class ImportSummary:
    """What an import did (or, with `dry_run`, would do)."""

    source: str
    dry_run: bool
    experiments: list[str] = field(default_factory=list)
    skipped_experiments: list[str] = field(default_factory=list)  # "name: why"
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)  # "run id: error", one line each
    metric_points: int = 0
    artifacts: int = 0
    models: ModelOutcome = field(default_factory=ModelOutcome)


def open_source(uri: str) -> MlflowSource:
    """The MLflow store at `uri`: sqlite:///..., postgresql://... or http(s)://..."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput("--from needs an MLflow store URI")
    if uri.startswith(("http://", "https://")):
        from loopline.importers._mlflow_rest import MlflowServer

        return MlflowServer(uri)
    from loopline.importers._mlflow_db import MlflowDatabase

    return MlflowDatabase(uri)


def import_mlflow(
    uri: str,
    *,
    experiments: Sequence[str] | None = None,
    dry_run: bool = False,
    on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Copy the MLflow store at `uri` into the current project (see the module's doc).

    `experiments` names the experiments to copy (default: every active one that has
    runs); an unknown
    name raises NotFound before anything is written. `dry_run` reads the source and
    counts what would be copied. `on_total(runs)` and `progress(runs)` drive a bar.
    A run that cannot be imported (a hostile artifact path, a value loopline refuses)
    is listed in `failed` and the others go on.
    """
    source = open_source(uri)
    try:
        return _import(source, experiments, dry_run, on_total, progress)
    finally:
        source.close()


def _import(
    source: MlflowSource,
    names: Sequence[str] | None,
    dry_run: bool,
    on_total: Callable[[int], None] | None,
    progress: Callable[[int], None] | None,
) -> ImportSummary:
    summary = ImportSummary(source=source.uri, dry_run=dry_run)
    chosen = _chosen(source.experiments(), names)
    planned = [(exp, source.runs(exp)) for exp in chosen]
    # MLflow creates "Default" on its own: an experiment without runs is not copied
    # unless it was asked for by name
    planned = [(exp, runs) for exp, runs in planned if runs or names]
    if on_total is not None:
        on_total(sum(len(runs) for _, runs in planned))
    opened = stores()
    if not hasattr(opened.metadata.runs, "import_run"):  # a project behind a server
        raise InvalidInput(
            "importing into a project that works through a server is not supported yet",
            hint="run the import where the server's own project is (its database)",
        )
    known = opened.metadata.runs.imported_runs(KEY_TAG, FINGERPRINT_TAG)
    run_ids = {source_id: run_id for source_id, (run_id, _) in known.items()}
    for experiment, runs in planned:
        try:
            name = check_experiment_name(experiment.name)
        except InvalidInput as exc:
            summary.skipped_experiments.append(f"{experiment.name}: {exc.message}")
            _advance(progress, len(runs))
            continue
        summary.experiments.append(name)
        experiment_id = None if dry_run else opened.metadata.runs.get_or_create_experiment(name).id
        for run in runs:
            earlier = known.get(run.id)
            if earlier is not None and earlier[1] == run.fingerprint:
                summary.unchanged += 1
            elif dry_run:
                summary.new += earlier is None
                summary.updated += earlier is not None
                run_ids.setdefault(run.id, "")  # its model versions would come too
            else:
                assert experiment_id is not None
                _import_one(source, run, experiment_id, run_ids, opened, summary, earlier)
            _advance(progress, 1)
    for model in source.models():
        import_model(model, source, run_ids, opened, summary.models, dry_run=dry_run)
    return summary


def _import_one(
    source: MlflowSource,
    run: SourceRun,
    experiment_id: str,
    run_ids: dict[str, str],
    opened: Stores,
    summary: ImportSummary,
    earlier: tuple[str, str] | None,
) -> None:
    try:
        history = source.metric_history(run)
        with tempfile.TemporaryDirectory(prefix="loopline-mlflow-") as scratch:
            artifacts, note = _artifacts(source, run, Path(scratch), opened)
        imported = _imported_run(run, history, artifacts, note, run_ids)
        run_ids[run.id] = opened.metadata.runs.import_run(experiment_id, imported)
    except LooplineError as exc:
        summary.failed.append(f"{run.id}: {exc.message}")
        return
    summary.new += earlier is None
    summary.updated += earlier is not None
    summary.metric_points += sum(len(points) for points in history.values())
    summary.artifacts += len(artifacts)


def _artifacts(
    source: MlflowSource, run: SourceRun, scratch: Path, opened: Stores
) -> tuple[list[tuple[str, str, int | None]], str | None]:
    """The run's artifact links (each file stored as a blob), and a note when they could
    not be read from here. A hostile path raises InvalidPath: the run is not imported."""
    links: list[tuple[str, str, int | None]] = []
    try:
        for logical, path in source.download_artifacts(run, scratch):
            blob = opened.artifacts.put_file(path)
            links.append((logical, blob.hash, blob.size))
    except InvalidPath:
        raise
    except NotFound as exc:
        return [], f"not copied: {exc.message}"
    return links, None


def _imported_run(
    run: SourceRun,
    history: dict[str, list[tuple[float, int, int]]],
    artifacts: list[tuple[str, str, int | None]],
    note: str | None,
    run_ids: dict[str, str],
) -> ImportedRun:
    tags = dict(run.tags)
    cut = [key for key, value in tags.items() if len(value) > MAX_TAG]
    for key in cut:
        tags[key] = tags[key][:MAX_TAG]
    tags[FINGERPRINT_TAG] = run.fingerprint
    if cut:
        tags["loopline.import.truncated"] = ", ".join(cut)[:MAX_TAG]
    if note is not None:
        tags[ARTIFACTS_NOTE] = note[:MAX_TAG]
    deleted = run.lifecycle_stage == "deleted"
    return ImportedRun(
        key_tag=KEY_TAG,
        key=run.id,
        name=run.name or tags.get("mlflow.runName", ""),
        status=_status(run.status),
        start_time=run.start_time,
        end_time=run.end_time,
        user=run.user or tags.get("mlflow.user", ""),
        source=tags.get("mlflow.source.name", ""),
        deleted_time=(run.deleted_time or run.end_time or run.start_time) if deleted else None,
        parent_id=run_ids.get(tags.get("mlflow.parentRunId", "")),
        preferred_id=run.id,
        params=run.params,
        tags=tags,
        metrics=history,  # NaN stays NaN: the store keeps it (as NULL)
        artifacts=artifacts,
    )


def _status(status: str) -> RunStatus:
    if status == "SCHEDULED":
        return RunStatus.RUNNING
    try:
        return RunStatus(status)
    except ValueError:
        return RunStatus.FAILED


def _chosen(found: list[SourceExperiment], names: Sequence[str] | None) -> list[SourceExperiment]:
    if not names:
        return [exp for exp in found if exp.lifecycle_stage != "deleted"]
    by_name = {exp.name: exp for exp in found}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        listed = ", ".join(sorted(by_name)) or "none"
        raise NotFound(
            f"the MLflow store has no experiment {redact_text(unknown[0])!r} (it has: {listed})"
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def _advance(progress: Callable[[int], None] | None, count: int) -> None:
    if progress is not None and count:
        progress(count)
