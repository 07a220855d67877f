"""Running the prediction service: uvicorn, one or more worker processes, TCP_NODELAY.

`serve({"churn": "churn@champion"})` pins each reference to a version in this process
(so that every worker serves the same one, even if an alias moves meanwhile), then
starts uvicorn on the `app_from_env` factory; the settings reach the workers in the
LOOPLINE_SERVE_CONFIG environment variable, and each worker loads and warms up its
models in the background (/health/ready answers 200 once it has). Every model is loaded
once before uvicorn starts, so that one that cannot load fails the command at start.

Accepted sockets get TCP_NODELAY through `NoDelayHTTPProtocol`: uvicorn's multi-worker
mode hands its workers a socket on which asyncio does not set it (uvicorn#3149), and
with Nagle's algorithm each response waits for the client's delayed ACK (~40 ms).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import logging.config
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.packaging import check_trusted
from loopline.predictions import DEFAULT_DURABILITY as DEFAULT_LOG_DURABILITY
from loopline.predictions import check_durability
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loopline.serving.deployments import Deployment
    from loopline.serving.runtime import ServedModel, ServingPlan

log = logging.getLogger(__name__)

CONFIG_ENV = "LOOPLINE_SERVE_CONFIG"
ONNX_THREADS_ENV = "LOOPLINE_ONNX_THREADS"  # read by loopline.packaging._onnx
PROTOCOL = "loopline.serving.online.server:NoDelayHTTPProtocol"
FACTORY = "loopline.serving.online.server:app_from_env"


@dataclass(frozen=True)
class ServeConfig:
    """What every worker needs to build the same app (JSON in LOOPLINE_SERVE_CONFIG)."""

    deployments: dict[str, tuple[str, bool]]  # name -> (pinned version ref, prefer ONNX)
    stored: list[str] = field(default_factory=list)  # stored deployments, watched for changes
    poll_seconds: float = 2.0
    runtime: str | None = None  # stored deployments: overrides each one's own runtime
    log_predictions: bool = True
    log_durability: str = "fast"
    trusted: list[str] = field(default_factory=list)  # types trusted beyond those recorded
    allow_pickle: bool = False
    project: str | None = None
    store_uri: str | None = None
    artifact_uri: str | None = None
    app: dict[str, Any] = field(default_factory=dict)  # create_app keyword arguments
    heartbeat: dict[str, Any] = field(default_factory=dict)  # stored: {"address", "seconds"}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        body = json.loads(text)
        deployments = {name: (ref, bool(onnx)) for name, (ref, onnx) in body["deployments"].items()}
        return cls(
            deployments=deployments,
            stored=list(body.get("stored", [])),
            poll_seconds=float(body.get("poll_seconds", 2.0)),
            runtime=body.get("runtime"),
            log_predictions=bool(body.get("log_predictions", True)),
            log_durability=str(body.get("log_durability", "fast")),
            trusted=[str(name) for name in body.get("trusted", [])],
            allow_pickle=body.get("allow_pickle") is True,
            project=body.get("project"),
            store_uri=body.get("store_uri"),
            artifact_uri=body.get("artifact_uri"),
            app=dict(body.get("app", {})),
            heartbeat=dict(body.get("heartbeat", {})),
        )


# How long a worker may take to start (import, open the stores, load its models) and to
# answer uvicorn's health pings before it is killed and replaced: uvicorn's 5 s default
# restarts, forever, a worker that loads a large model or starts on a busy machine.
WORKER_START_S = 120


def plan_deployments(
    refs: Mapping[str, str] | str,
    *,
    prefer_onnx: bool = True,
    runtime: str = "auto",
    trusted: list[str] | None = None,
) -> dict[str, ServingPlan]:
    """The version and runtime each deployment will serve (models are not loaded, but
    under `runtime` "auto" or "onnx" a version without an ONNX export is converted and
    the export registered now; `prefer_onnx=False` means "native").

    `refs` maps deployment names to model references; a single reference is deployed
    under its model's name. Raises NotFound for an unknown reference, InvalidInput for
    an unknown runtime or a version "onnx" cannot convert.
    """
    from loopline.serving._runtime import check_runtime, plan_runtime

    runtime = check_runtime(runtime) if prefer_onnx else "native"
    if isinstance(refs, str):
        plan = plan_runtime(refs, runtime, trusted=trusted)
        return {plan.version.model: plan}
    if not refs:
        raise InvalidInput("nothing to serve: give at least one model reference")
    names = {check_deployment_name(name): ref for name, ref in refs.items()}
    return {name: plan_runtime(ref, runtime, trusted=trusted) for name, ref in names.items()}


def serve(
    refs: Mapping[str, str] | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    prefer_onnx: bool = True,
    log_predictions: bool = True,
    log_durability: str = DEFAULT_LOG_DURABILITY,
    max_body_bytes: int = 1_048_576,
    max_batch_size: int = 64,
    max_batch_wait_ms: float = 2.0,
    body_timeout_seconds: float = 30.0,
    log_level: str = "info",
    access_log: bool = False,
    strict_inputs: bool = False,
    default: str | None = None,
    runtime: str = "auto",
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
) -> None:
    """Serve models over HTTP until interrupted (see `create_app` for the endpoints).

    `refs`: {deployment name: model reference}, or one reference (deployed under its
    model's name). Each of `workers` processes loads every model. `runtime="auto"` serves
    a version's ONNX export, converting it first (once, before any worker starts) when
    there is none and falling back to the native flavor when conversion or parity fails;
    "onnx" makes that failure an error; "native" (or `prefer_onnx=False`) never uses ONNX.
    `log_predictions` writes every answered request to the prediction log;
    `log_durability="sync"` answers a request only once its record is in the journal
    file, "fsync" once it is flushed to the disk (see loopline.predictions; "fast" buffers). A
    request body not in after `body_timeout_seconds` is answered 408 and its connection
    closed. A row's fields that are not model inputs are dropped and named in the
    X-Dropped-Fields response header, or refused (422) with `strict_inputs`. `default`
    names the deployment MLflow's `/invocations` answers for (else "default" or the only
    one); every deployment also has /v1/deployments/NAME/invocations. Models load as
    `loopline.models.load` loads them: the types recorded with each version plus
    `trusted`; a pickle only with `allow_pickle`.

    Example:
        serve({"churn": "churn@champion"}, port=8080, workers=2)
    """
    _check_workers(workers)
    _share_cores(workers)
    check_durability(log_durability)  # before anything is loaded
    trusted = check_trusted(trusted)
    logging.config.dictConfig(log_config(log_level))  # a conversion at planning says so
    plans = plan_deployments(refs, prefer_onnx=prefer_onnx, runtime=runtime, trusted=trusted)
    _check_default(default, plans)
    config = _config(
        deployments={
            name: (plan.runtime_version.ref, plan.runtime == "onnxruntime")
            for name, plan in plans.items()
        },
        log_predictions=log_predictions,
        log_durability=log_durability,
        trusted=trusted,
        allow_pickle=allow_pickle,
        app=_app_limits(max_body_bytes, max_batch_size, max_batch_wait_ms, body_timeout_seconds)
        | {"strict_inputs": strict_inputs, "default": default},
    )
    _check_load(config, keep=workers == 1)
    lines = [f"deployment '{name}' serves {plan.describe()}" for name, plan in plans.items()]
    _run(config, lines, host, port, workers, log_level, access_log)


# Models `_check_load` loaded in this process, for the single worker uvicorn runs here.
_preloaded: dict[tuple[str, str, bool], ServedModel] = {}


def _check_load(config: ServeConfig, *, keep: bool) -> None:
    """Load every model once before any worker starts.

    A model that cannot load (it needs trust, its package is broken or refused) then
    fails the command with its error and exit code, instead of a server that starts and
    answers /health/ready 503 forever. With one worker, uvicorn runs the app in this
    process: `keep` hands it the loaded models rather than loading them twice. (Stored
    deployments, `serve_deployments`, keep serving the last good revision instead.)
    """
    for name, (ref, onnx) in config.deployments.items():
        served = _load(config, ref, onnx)
        if keep:
            _preloaded[(name, ref, bool(onnx))] = served


def _load(config: ServeConfig, ref: str, onnx: bool) -> ServedModel:
    """One of `config`'s fixed models, loaded with its trust (warmed up by the app)."""
    from loopline.serving.runtime import load_served

    return load_served(
        ref,
        prefer_onnx=onnx,
        warm_up=False,
        trusted=config.trusted,
        allow_pickle=config.allow_pickle,
    )


def serve_deployments(
    names: Sequence[str] | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    poll_seconds: float = 2.0,
    log_predictions: bool = True,
    log_durability: str = DEFAULT_LOG_DURABILITY,
    max_body_bytes: int = 1_048_576,
    max_batch_size: int = 64,
    max_batch_wait_ms: float = 2.0,
    body_timeout_seconds: float = 30.0,
    log_level: str = "info",
    access_log: bool = False,
    strict_inputs: bool = False,
    default: str | None = None,
    runtime: str | None = None,
    trusted: list[str] | None = None,
    allow_pickle: bool = False,
    heartbeat_seconds: float = 10.0,
) -> None:
    """Serve stored deployments until interrupted, following their changes.

    Every `poll_seconds` each worker checks the deployments' revisions; a changed one is
    loaded and warmed up beside the running one, then swapped in without dropping a
    request. `log_predictions`, `log_durability`, `strict_inputs` and `default` as for
    `serve`; `runtime` overrides each deployment's own (see `serve`), and versions are
    converted to ONNX here, before any worker starts. `trusted` and `allow_pickle` as
    for `serve`, for every version the deployments serve now or later. Raises NotFound
    for an unknown deployment. Every worker writes a heartbeat to the store every
    `heartbeat_seconds` (and at once when what it serves changes): the revision it
    serves and its last load error, which `deploy show` prints (see serving.servers).

    Example:
        serve_deployments("churn", port=8080, workers=2)
    """
    from loopline.serving._runtime import check_runtime
    from loopline.serving.deployments import get_deployment
    from loopline.serving.online._heartbeat import check_heartbeat_seconds

    _check_workers(workers)
    _share_cores(workers)
    check_durability(log_durability)  # before anything is loaded
    if runtime is not None:
        check_runtime(runtime)
    if not 0.1 <= poll_seconds <= 3600:
        raise InvalidInput(f"poll_seconds must be between 0.1 and 3600, got {poll_seconds}")
    beat = check_heartbeat_seconds(heartbeat_seconds)
    heartbeat = {"address": f"{host}:{port}", "seconds": beat}
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if not names:
        raise InvalidInput("nothing to serve: name at least one deployment")
    found = [get_deployment(check_deployment_name(name)) for name in names]
    _check_default(default, names)
    trusted = check_trusted(trusted)
    logging.config.dictConfig(log_config(log_level))  # a conversion at planning says so
    runtimes = _plan_stored(found, runtime, trusted)
    config = _config(
        deployments={},
        stored=names,
        poll_seconds=poll_seconds,
        runtime=runtime,
        log_predictions=log_predictions,
        log_durability=log_durability,
        trusted=trusted,
        allow_pickle=allow_pickle,
        app=_app_limits(max_body_bytes, max_batch_size, max_batch_wait_ms, body_timeout_seconds)
        | {"strict_inputs": strict_inputs, "default": default},
        heartbeat=heartbeat,
    )
    lines = [
        f"deployment '{d.name}' (revision {d.revision}) serves {d.spec.describe()}; "
        + runtimes[d.name]
        for d in found
    ]
    _run(config, lines, host, port, workers, log_level, access_log)


def _plan_stored(
    found: Sequence[Deployment], runtime: str | None, trusted: list[str]
) -> dict[str, str]:
    """Plan (and convert) every version of the stored deployments in this process, so
    that workers find the exports; per deployment, a line saying what runs each one."""
    from loopline.serving._runtime import plan_runtime

    described = {}
    for deployment in found:
        chosen = runtime or deployment.spec.runtime
        plans = [plan_runtime(ref, chosen, trusted=trusted) for ref in deployment.spec.versions]
        described[deployment.name] = "; ".join(plan.describe() for plan in plans)
    return described


def _app_limits(
    max_body_bytes: int, max_batch_size: int, wait_ms: float, body_timeout: float
) -> dict[str, Any]:
    """The create_app keyword arguments every worker gets (the body timeout checked here,
    before any worker starts)."""
    from loopline.serving.online._body_timeout import check_body_timeout

    return {
        "max_body_bytes": max_body_bytes,
        "max_batch_size": max_batch_size,
        "max_batch_wait_ms": wait_ms,
        "body_timeout_seconds": check_body_timeout(body_timeout),
        "freeze_heap": True,  # a worker only serves (see _service.freeze_heap)
    }


def _check_default(default: str | None, names: Sequence[str] | Mapping[str, Any]) -> None:
    """InvalidInput unless `default` (if given) is one of the deployments served."""
    if default is not None and check_deployment_name(default) not in names:
        raise InvalidInput(
            f"--default '{default}' is not one of the deployments served: "
            + ", ".join(sorted(names))
        )


def _share_cores(workers: int) -> None:
    """One onnxruntime thread pool per worker, the cores shared out between workers
    (unless LOOPLINE_ONNX_THREADS is set; see packaging._onnx), before any model loads."""
    os.environ.setdefault(ONNX_THREADS_ENV, str(max(1, (os.cpu_count() or 1) // workers)))


def _check_workers(workers: int) -> None:
    if workers < 1:
        raise InvalidInput(f"workers must be at least 1, got {workers}")


def _config(**values: Any) -> ServeConfig:
    """A ServeConfig for the current project's stores."""
    from loopline.project import stores

    settings = stores().settings
    return ServeConfig(
        project=str(settings.root),
        store_uri=settings.store_uri,
        artifact_uri=settings.artifact_uri,
        **values,
    )


def _run(
    config: ServeConfig,
    lines: list[str],
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: bool,
) -> None:
    import shutil
    import tempfile

    import uvicorn

    from loopline.serving.online._metrics import MULTIPROCESS_ENV

    os.environ[CONFIG_ENV] = config.to_json()
    metrics_dir = None
    if workers > 1:  # every worker's metrics in one scrape (see _metrics)
        metrics_dir = tempfile.mkdtemp(prefix="loopline-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    logging_config = log_config(log_level)
    logging.config.dictConfig(logging_config)
    for line in lines:
        log.info("%s", line)
    log.info(
        "prediction service on http://%s:%d (%d worker%s)", host, port, workers, "s" * (workers > 1)
    )
    try:
        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=PROTOCOL,
            log_config=logging_config,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=10,
            timeout_worker_healthcheck=WORKER_START_S,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop(MULTIPROCESS_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker, configured by LOOPLINE_SERVE_CONFIG."""
    from loopline.project import configure
    from loopline.serving.online.app import create_app

    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise InvalidInput(f"{CONFIG_ENV} is not set; start the service with loopline serve")
    config = ServeConfig.from_json(text)
    configure(project=config.project, store_uri=config.store_uri, artifact_uri=config.artifact_uri)
    sink = None
    if config.log_predictions:
        from loopline.predictions import PredictionLog

        sink = PredictionLog(durability=config.log_durability)
    if config.stored:
        from loopline.serving.online._stored import StoredDeployments

        source = StoredDeployments(
            config.stored,
            poll_seconds=config.poll_seconds,
            runtime=config.runtime,
            trusted=config.trusted,
            allow_pickle=config.allow_pickle,
        )
        app = create_app(source, sink=sink, **config.app)
        from loopline.project import stores
        from loopline.serving.online._monitor_metrics import MonitorScores

        app.state.service.metrics.add_collector(MonitorScores(stores(), config.stored))
        if config.heartbeat:
            from loopline.serving.online._heartbeat import attach_heartbeat

            beat = config.heartbeat
            attach_heartbeat(app, source, address=beat["address"], interval=beat["seconds"])
        return app

    def load() -> dict[str, ServedModel]:
        models = {}
        for name, (ref, onnx) in config.deployments.items():
            served = _preloaded.pop((name, ref, bool(onnx)), None)
            models[name] = served if served is not None else _load(config, ref, onnx)
        return models

    return create_app(load, sink=sink, **config.app)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration, plus loopline's logger on the same handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["loopline"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


@functools.cache
def no_delay_protocol() -> type[Any]:
    """uvicorn's HTTP protocol class, setting TCP_NODELAY on every accepted TCP socket."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from loopline.serving.online._coalesce import CoalescingTransport

    base: Any = AutoHTTPProtocol

    class NoDelayHTTPProtocol(base):  # type: ignore[misc]
        """HTTP/1.1 with Nagle's algorithm off: each response leaves at once."""

        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(CoalescingTransport(transport))  # see _coalesce

    return NoDelayHTTPProtocol


def __getattr__(name: str) -> Any:
    # uvicorn imports the protocol by its import string, in every worker.
    if name == "NoDelayHTTPProtocol":
        return no_delay_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
