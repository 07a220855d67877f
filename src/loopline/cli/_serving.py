"""`loopline serve`: a registered model over HTTP."""

from __future__ import annotations

from typing import Any

import typer

from loopline.cli._trust import allow_pickle_option, trust_option


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


def runtime_option(default: str | None = "auto", own: str = "") -> Any:
    """`--runtime`, as `serve` and `deploy` commands take it (checked by the library, so
    that a bad value is one `Error:` line, exit 2)."""
    return typer.Option(
        default,
        "--runtime",
        metavar="[auto|native|onnx]",
        help="auto: the ONNX export, converted and parity-checked at load when there is "
        "none (cached in the store), native when that fails; onnx: the same, failing "
        "instead; native: never ONNX." + (f" {own}" if own else ""),
    )


def serve(
    ref: str = typer.Argument(..., help="The model to serve: churn, churn/3 or churn@champion."),
    port: int = typer.Option(8080, "--port", help="The TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes, each with the model."),
    name: str | None = typer.Option(
        None, "--name", help="deployment name; default: the model name"
    ),
    runtime: str = runtime_option(),
    native: bool = typer.Option(False, "--native", help="the same as --runtime native"),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write the prediction log."),
    log_durability: str = log_durability_option(),
    body_timeout: float = body_timeout_option(),
    strict_inputs: bool = strict_inputs_option(),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Serve a registered model: loopline's JSON API, KServe V2 and MLflow /invocations.

    Serves the model's parity-checked ONNX export with onnxruntime; without one, converts
    it at start (parity-checked on its training data, kept as an export) or says why it
    runs natively (--runtime). The start-up line names each deployment's runtime.
    Endpoints: POST /v1/deployments/NAME/predict, POST /v2/models/NAME/infer,
    POST /invocations, GET /health/ready, GET /metrics. Every answered request goes to
    the prediction log (`loopline deploy logs NAME`) unless --no-log. A model that cannot
    load (unknown, needs trust, refused package) stops the command at start. Stop with Ctrl+C.

    Example: loopline serve churn@champion --port 8080 --workers 2
    """
    from loopline.cli._project import open_project
    from loopline.errors import InvalidInput
    from loopline.serving import check_runtime
    from loopline.serving import serve as run_server

    if native and runtime not in ("auto", "native"):
        raise InvalidInput(f"--native contradicts --runtime {runtime}; give one of them")
    check_runtime(runtime)  # before the project is looked for
    open_project()
    refs: dict[str, str] | str = ref if name is None else {name: ref}
    run_server(
        refs,
        host=host,
        port=port,
        workers=workers,
        runtime="native" if native else runtime,
        log_predictions=not no_log,
        log_durability=log_durability,
        body_timeout_seconds=body_timeout,
        strict_inputs=strict_inputs,
        trusted=trust or [],
        allow_pickle=allow_pickle,
    )
