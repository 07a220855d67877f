"""`loopline predict`: batch prediction over a file or a dataset version."""

from __future__ import annotations

from pathlib import Path

import typer

from loopline.cli._output import RowProgress, console
from loopline.cli._trust import allow_pickle_option, trust_option


def predict(
    model: str = typer.Argument(..., help="A model reference: NAME, NAME/VERSION, NAME@ALIAS."),
    input: str = typer.Option(
        ..., "--input", help="A .parquet or .csv file, or a dataset version NAME@VERSION."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        help="The file to write; its extension chooses the format: .parquet, .csv or .jsonl.",
    ),
    keep: list[str] | None = typer.Option(
        None,
        "--keep",
        help="An input column to copy beside the predictions, e.g. an id (repeatable).",
    ),
    chunk_size: int = typer.Option(50_000, "--chunk-size", help="Rows predicted at a time."),
    native: bool = typer.Option(
        False, "--native", help="Run the model's own flavor, not its ONNX export."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="Where chunks are predicted: local (this process) or ray (a Ray cluster; the "
        "ray extra).",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="The Ray cluster for --executor ray (default: $RAY_ADDRESS, else a local Ray "
        "started for this batch).",
    ),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Predict on every row of a file or dataset version; write Parquet, CSV or JSON Lines.

    Example: loopline predict churn@champion --input data.parquet --output preds.csv --keep id
    """
    from loopline.cli._project import open_project
    from loopline.serving.batch import predict_batch

    open_project()
    with RowProgress("predicting") as bar:
        result = predict_batch(
            model,
            input,
            output,
            chunk_size=chunk_size,
            prefer_onnx=not native,
            overwrite=overwrite,
            progress=bar.advance,
            on_total=bar.on_total,
            executor=executor,
            ray_address=ray_address,
            keep=keep or (),
            trusted=trust or [],
            allow_pickle=allow_pickle,
        )
    console.print(
        f"predicted [bold]{result.rows:,}[/] rows with [bold]{result.model_version}[/] "
        f"({result.rows_per_second:,.0f} rows/s)"
    )
    console.print(f"output: {result.output}")
    if result.run_id is not None:
        console.print(f"run: {result.run_id}")
