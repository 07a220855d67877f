"""`loopline deploy ...`: named deployments, their strategies, history, logs and exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopline.cli._output import console, moment
from loopline.cli._serving import (
    body_timeout_option,
    log_durability_option,
    runtime_option,
    strict_inputs_option,
)
from loopline.cli._trust import allow_pickle_option, trust_option

if TYPE_CHECKING:
    from loopline.serving.deployments import Deployment

app = typer.Typer(
    help="Deployments: which model versions an endpoint serves (canary, shadow, A/B).",
    no_args_is_help=True,
)

_REASON = typer.Option(None, "--reason", "-m", help="Why (kept in the history and audit log).")


def _open() -> None:
    from loopline.cli._project import open_project

    open_project()


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The deployment name (one URL path segment)."),
    model: str = typer.Option(..., "--model", help="churn, churn/3 or churn@champion"),
    native: bool = typer.Option(
        False, "--native", help="serve the native flavor even if an ONNX form exists"
    ),
    strict_inputs: bool = typer.Option(
        False,
        "--strict-inputs",
        help="Refuse (422) request fields that are not model inputs (by default dropped and "
        "named in the X-Dropped-Fields response header).",
    ),
    runtime: str = runtime_option(),
    reason: str | None = _REASON,
) -> None:
    """Create a deployment serving one model version (references are pinned now).

    Example: loopline deploy create churn --model churn@champion
    """
    from loopline.serving.deployments import create_deployment

    _open()
    deployment = create_deployment(
        name,
        model,
        runtime="native" if native else runtime,
        strict_inputs=strict_inputs,
        reason=reason,
    )
    _print(deployment, "created")


@app.command("update")
def update(
    name: str = typer.Argument(..., help="The deployment to change."),
    model: str | None = typer.Option(None, "--model", help="a new main model version"),
    canary: str | None = typer.Option(None, "--canary", help="a version to send some traffic"),
    weight: float | None = typer.Option(None, "--weight", help="canary percent (default 10)"),
    shadow: str | None = typer.Option(None, "--shadow", help="a version to mirror traffic to"),
    ab: str | None = typer.Option(None, "--ab", help="A/B versions, e.g. churn/4,churn/5"),
    key: str | None = typer.Option(None, "--key", help="the field whose value picks A or B"),
    no_canary: bool = typer.Option(False, "--no-canary", help="remove the canary"),
    no_shadow: bool = typer.Option(False, "--no-shadow", help="remove the shadow"),
    strict_inputs: bool | None = typer.Option(
        None,
        "--strict-inputs/--lenient-inputs",
        help="refuse (422) request fields that are not model inputs, or drop them",
    ),
    runtime: str | None = runtime_option(None, "Default: unchanged."),
    reason: str | None = _REASON,
) -> None:
    """Change a deployment's model or strategy; running servers follow within seconds.

    Examples:
      loopline deploy update churn --canary churn@challenger --weight 10
      loopline deploy update churn --shadow churn@challenger
      loopline deploy update churn --ab churn/4,churn/5 --key customer_id
    """
    from loopline.serving.deployments import update_deployment

    _open()
    variants = None if ab is None else [part.strip() for part in ab.split(",") if part.strip()]
    deployment = update_deployment(
        name,
        model=model,
        canary=canary,
        weight=weight,
        shadow=shadow,
        ab=variants,
        key=key,
        no_canary=no_canary,
        no_shadow=no_shadow,
        strict_inputs=strict_inputs,
        runtime=runtime,
        reason=reason,
    )
    _print(deployment, "updated")


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="The deployment whose canary wins."),
    variant: str | None = typer.Option(None, "--variant", help="the A/B version that wins"),
    reason: str | None = _REASON,
) -> None:
    """Make the canary (or an A/B variant) the deployment's only model.

    Example: loopline deploy promote churn
    """
    from loopline.serving.deployments import promote_deployment

    _open()
    _print(promote_deployment(name, variant=variant, reason=reason), "promoted")


@app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="The deployment to roll back."),
    reason: str | None = _REASON,
) -> None:
    """Go back to the configuration before the last change (again to go further back).

    Example: loopline deploy rollback churn
    """
    from loopline.serving.deployments import rollback_deployment

    _open()
    _print(rollback_deployment(name, reason=reason), "rolled back")


@app.command("ls")
def list_all(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List deployments with what they serve, and what their running servers serve
    ("live r4", "r3 of r4 ⚠" when a server still serves an older revision, "no server").

    Example: loopline deploy ls
    """
    from rich.table import Table

    from loopline.serving.deployments import list_deployments
    from loopline.serving.servers import servers_by_deployment, servers_summary

    _open()
    found = list_deployments()
    servers = servers_by_deployment()
    if as_json:
        bodies = [_body(d) | _servers(servers.get(d.name, [])) for d in found]
        console.print_json(json.dumps(bodies))
        return
    if not found:
        console.print("no deployments yet: `loopline deploy create NAME --model REF` makes one")
        return
    table = Table("Deployment", "Revision", "Strategy", "Serves", "Served", "Updated")
    for d in found:
        table.add_row(
            d.name,
            str(d.revision),
            d.spec.strategy,
            d.spec.describe(),
            servers_summary(servers.get(d.name, []), d.revision),
            moment(d.updated_at, short=True),
        )
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="The deployment."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a deployment's configuration, and per running server the revision it
    actually serves (a revision that failed to load is named with its error).

    Example: loopline deploy show churn
    """
    from loopline.cli._deploy_servers import print_servers
    from loopline.serving.deployments import get_deployment
    from loopline.serving.servers import server_status

    _open()
    deployment = get_deployment(name)
    servers = server_status(deployment.name)
    if as_json:
        console.print_json(json.dumps(_body(deployment) | _servers(servers)))
        return
    _print(deployment, None)
    print_servers(servers, deployment.revision)


@app.command("history")
def history(
    name: str = typer.Argument(..., help="The deployment."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a deployment's revisions: what changed, who, when and why.

    Example: loopline deploy history churn
    """
    from rich.table import Table

    from loopline.serving.deployments import DeploymentSpec, deployment_history

    _open()
    revisions = deployment_history(name)
    if as_json:
        body = [
            {
                "revision": r.revision,
                "action": r.action,
                "config": r.config,
                "actor": r.actor,
                "reason": r.reason,
                "time": r.created_at.isoformat(),
            }
            for r in revisions
        ]
        console.print_json(json.dumps(body))
        return
    table = Table("Revision", "Action", "Serves", "By", "When", "Reason")
    for r in revisions:
        table.add_row(
            str(r.revision),
            r.action,
            DeploymentSpec.from_dict(r.config).describe(),
            r.actor,
            moment(r.created_at, short=True),
            r.reason or "",
        )
    console.print(table)


@app.command("serve")
def serve(
    names: list[str] = typer.Argument(..., help="One or more deployments to serve."),
    port: int = typer.Option(8080, "--port", help="The TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes, each with the models."),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between checks for changes."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write the prediction log."),
    log_durability: str = log_durability_option(),
    body_timeout: float = body_timeout_option(),
    strict_inputs: bool = strict_inputs_option(),
    runtime: str | None = runtime_option(None, "Default: each deployment's own."),
    default: str | None = typer.Option(
        None,
        "--default",
        help="The deployment MLflow's POST /invocations answers for (needed with two or "
        "more, unless one is named 'default').",
    ),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
    heartbeat: float = typer.Option(
        10.0,
        "--heartbeat",
        help="Seconds between the heartbeats each worker writes to the store (what it "
        "serves, for `deploy show`); three missed beats show it as stale.",
    ),
) -> None:
    """Serve stored deployments, following their changes without a restart.

    Endpoints: POST /v1/deployments/NAME/predict, POST /v1/deployments/NAME/feedback,
    POST /v2/models/NAME/infer, POST /invocations (JSON or CSV, the --default deployment),
    POST /v1/deployments/NAME/invocations, GET /ping, GET /health/ready, GET /metrics.

    Example: loopline deploy serve churn --port 8080 --workers 2
    """
    from loopline.serving import check_runtime, serve_deployments

    if runtime is not None:
        check_runtime(runtime)  # before the project is looked for
    _open()
    serve_deployments(
        names,
        host=host,
        port=port,
        workers=workers,
        poll_seconds=poll,
        log_predictions=not no_log,
        log_durability=log_durability,
        body_timeout_seconds=body_timeout,
        strict_inputs=strict_inputs,
        default=default,
        runtime=runtime,
        trusted=trust or [],
        allow_pickle=allow_pickle,
        heartbeat_seconds=heartbeat,
    )


@app.command("logs")
def logs(
    name: str = typer.Argument(..., help="The deployment."),
    since: str = typer.Option("1h", "--since", help="1h, 30m, 2d or an ISO time"),
    until: str | None = typer.Option(None, "--until", help="an ISO time (default: now)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write Parquet here"),
    limit: int = typer.Option(20, "--limit", help="rows to print (newest)"),
) -> None:
    """Show or export the prediction log of a deployment over a time window.

    Example: loopline deploy logs churn --since 1h --output last-hour.parquet
    """
    from loopline.predictions import parse_since, read_predictions

    _open()
    start = parse_since(since)
    end = None if until is None else parse_since(until)
    table = read_predictions(name, since=start, until=end)
    if output is not None:
        _write_parquet(table, output)
        console.print(f"wrote {table.num_rows:,} logged predictions to {output}")
        return
    _print_log(name, table, limit)


@app.command("export")
def export(
    name: str = typer.Argument(..., help="The deployment."),
    target: str = typer.Option(..., "--target", help="docker, kubernetes or kserve"),
    out: Path = typer.Option(Path("deploy"), "--out", "-o", help="the folder to write"),
    image: str | None = typer.Option(None, "--image", help="the container image name"),
) -> None:
    """Write what runs the deployment elsewhere: a Dockerfile, Kubernetes manifests, or a
    KServe InferenceService.

    Example: loopline deploy export churn --target kubernetes --out deploy/
    """
    from loopline.serving.deployments import get_deployment
    from loopline.serving.export import export_deployment

    _open()
    result = export_deployment(get_deployment(name), target, out, image=image)
    for path in result.files:
        console.print(f"wrote {path}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _print(deployment: Deployment, verb: str | None) -> None:
    spec = deployment.spec
    if verb is not None:
        console.print(
            f"deployment [bold]{deployment.name}[/] {verb}: revision {deployment.revision}"
        )
    console.print(f"  serves    {spec.describe()}")
    console.print(f"  strategy  {spec.strategy}")
    console.print(f"  runtime   {spec.runtime}")
    extra = "refused (422)" if spec.strict_inputs else "dropped, named in X-Dropped-Fields"
    console.print(f"  inputs    fields that are not inputs: {extra}")
    if verb is None:
        console.print(f"  revision  {deployment.revision}, updated {moment(deployment.updated_at)}")


def _body(deployment: Deployment) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "revision": deployment.revision,
        "strategy": deployment.spec.strategy,
        "config": deployment.spec.to_dict(),
        "created_by": deployment.created_by,
        "created_at": deployment.created_at.isoformat(),
        "updated_at": deployment.updated_at.isoformat(),
    }


def _servers(statuses: list[Any]) -> dict[str, Any]:
    """The JSON of a deployment's servers (ServerStatus), live ones first."""
    return {"servers": [status.to_dict() for status in statuses]}


def _write_parquet(table: Any, output: Path) -> None:
    import pyarrow.parquet as pq

    from loopline.errors import InvalidPath

    if output.is_dir():
        raise InvalidPath(f"{output} is a folder; give a file name ending in .parquet")
    temp = output.with_name(f".{output.name}.tmp")
    try:
        pq.write_table(table, temp)
        temp.replace(output)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InvalidPath(f"cannot write {output}: {exc.strerror or exc}") from None


def _print_log(name: str, table: Any, limit: int) -> None:
    from rich.table import Table

    if table.num_rows == 0:
        console.print(f"no logged predictions for '{name}' in that window")
        return
    shown = table.slice(max(0, table.num_rows - limit))
    view = Table("Time", "Request", "Row", "Version", "Prediction", "Latency ms", "Shadow")
    for row in shown.to_pylist():
        shadow = row.get("shadow_version") or ""
        if shadow:
            answer = row.get("shadow_error") or row.get("shadow_prediction")
            shadow = f"{shadow}: {answer}"
        view.add_row(
            moment(row["time"], short=True),
            str(row["request_id"])[:12],
            str(row["row"]),
            str(row["model_version"]),
            str(row["prediction"]),
            f"{row['latency_ms']:.2f}",
            shadow,
        )
    console.print(view)
    console.print(
        f"{table.num_rows:,} logged rows; showing the newest {shown.num_rows} "
        "(--output FILE.parquet writes them all)"
    )
