"""`loopline serve`: a registered model over HTTP."""

from __future__ import annotations

from typing import Any

import typer


def log_durability_option() -> Any:
    """`--log-durability`, as `serve` and `deploy serve` take it."""
    return typer.Option(
        "fast",
        "--log-durability",
        metavar="[fast|sync|fsync]",
        help="fast: log records are buffered (a kill loses up to ~5 s of them); sync: each "
        "answer waits until its record is in the journal file (a kill loses none); fsync: "
        "and flushed to the disk (a power cut loses none). Group-committed.",
    )


def body_timeout_option() -> Any:
    """`--body-timeout`, as `serve` and `deploy serve` take it."""
    return typer.Option(
        30.0, "--body-timeout", help="Seconds a request body may take to arrive (else 408)."
    )


def strict_inputs_option() -> Any:
    """`--strict-inputs`, as `serve` and `deploy serve` take it."""
    return typer.Option(
        False,
        "--strict-inputs",
        help="Refuse (422) request fields that are not model inputs; by default they are "
        "dropped and named in the X-Dropped-Fields response header.",
    )


def serve(
    ref: str = typer.Argument(..., help="The model to serve: churn, churn/3 or churn@champion."),
    port: int = typer.Option(8080, "--port", help="The TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes, each with the model."),
    name: str | None = typer.Option(
        None, "--name", help="deployment name; default: the model name"
    ),
    native: bool = typer.Option(
        False, "--native", help="serve the native flavor even if an ONNX form exists"
    ),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write the prediction log."),
    log_durability: str = log_durability_option(),
    body_timeout: float = body_timeout_option(),
    strict_inputs: bool = strict_inputs_option(),
) -> None:
    """Serve a registered model: loopline's JSON API, KServe V2 and MLflow /invocations.

    Uses the model's parity-checked ONNX export with onnxruntime when there is one.
    Endpoints: POST /v1/deployments/NAME/predict, POST /v2/models/NAME/infer,
    POST /invocations, GET /health/ready, GET /metrics. Every answered request goes to
    the prediction log (`loopline deploy logs NAME`) unless --no-log. A model that cannot
    load (unknown, needs trust, refused package) stops the command at start. Stop with Ctrl+C.

    Example: loopline serve churn@champion --port 8080 --workers 2
    """
    from loopline.cli._project import open_project
    from loopline.serving import serve as run_server

    open_project()
    refs: dict[str, str] | str = ref if name is None else {name: ref}
    run_server(
        refs,
        host=host,
        port=port,
        workers=workers,
        prefer_onnx=not native,
        log_predictions=not no_log,
        log_durability=log_durability,
        body_timeout_seconds=body_timeout,
        strict_inputs=strict_inputs,
    )
