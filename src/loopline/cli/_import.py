"""`loopline import ...`: copy another tool's store into the project."""

from __future__ import annotations

import typer

from loopline.cli._output import RowProgress, console
from loopline.errors import LooplineError

app = typer.Typer(help="Import another tool's store (MLflow).", no_args_is_help=True)


@app.command("mlflow")
def mlflow(
    source: str = typer.Option(
        ...,
        "--from",
        help="The MLflow store: sqlite:///mlflow.db, postgresql://..., or a tracking "
        "server's http(s):// URL.",
    ),
    experiment: list[str] | None = typer.Option(
        None, "--experiment", help="Import only this experiment (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Read the source and say what would be imported."
    ),
) -> None:
    """Copy MLflow experiments, runs (full metric history, params, tags, artifacts) and
    registered models into this project; running it again only brings changes over.

    Example: loopline import mlflow --from sqlite:///mlflow.db --experiment churn
    """
    from loopline.cli._project import open_project
    from loopline.importers import import_mlflow

    open_project()
    with RowProgress("importing runs") as bar:
        summary = import_mlflow(
            source,
            experiments=experiment or None,
            dry_run=dry_run,
            on_total=bar.on_total,
            progress=bar.advance,
        )
    verb = "would import" if dry_run else "imported"
    console.print(
        f"{verb} from {summary.source}: {len(summary.experiments)} experiments, "
        f"{summary.new} new runs, {summary.updated} updated, {summary.unchanged} unchanged"
        + (
            ""
            if dry_run
            else f" ({summary.metric_points:,} metric points, {summary.artifacts} artifacts)"
        )
    )
    models = summary.models
    if models.planned:
        console.print(f"model versions to import: {', '.join(models.planned)}", markup=False)
    if models.repackaged or models.kept or models.unchanged:
        console.print(
            f"model versions: {len(models.repackaged)} re-packaged, {len(models.kept)} kept "
            f"as files, {models.unchanged} unchanged, {models.aliases} aliases set"
        )
    for line in models.kept:
        console.print(f"  not re-packaged: {line}", markup=False)
    for line in summary.skipped_experiments:
        console.print(f"  skipped experiment {line}", markup=False)
    problems = [*summary.failed, *models.failed]
    for line in problems:
        console.print(f"  not imported: {line}", markup=False)
    if problems:
        raise LooplineError(
            f"{len(problems)} runs or model versions were not imported (listed above)",
            hint="fix the cause and run the same command again: it continues where it stopped",
        )
