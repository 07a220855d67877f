"""Batch prediction on Ray: the driver reads and writes, a pool of actors predicts.

The driver streams the input chunk by chunk as the local executor does, submits each
chunk to one of a few actors (one per CPU of the cluster), keeps at most
`IN_FLIGHT_PER_ACTOR` chunks per actor submitted, and hands the output tables back in
input order, so memory stays bounded whatever the input's size.

How the actors get the model: the driver reads the package files of the version that
runs (e.g. the ONNX export churn/2) from the project's content-addressed store, every
blob verified, puts them once in Ray's object store, and each actor loads them from a
private temporary folder, where `load_model` checks them against the package manifest
again. Workers thus need loopline installed but neither the project folder nor access
to its stores: this works on a remote cluster as on a local Ray, never opens a SQLite
store from many processes while the driver's run writes to it, and runs exactly the
bytes the driver resolved, even if an alias moves during the batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError, MissingExtra
from loopline.serving.batch._predict import predict_chunk

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.serving.runtime import ServedModel

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2  # one chunk predicting, one waiting: actors never idle for long


def require_ray() -> None:
    """Raise MissingExtra unless Ray can be imported."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("batch prediction on Ray (--executor ray)", "ray") from exc


@dataclass(frozen=True)
class _Model:
    """What an actor needs besides the package to answer as the driver's ServedModel."""

    name: str
    version_ref: str
    runtime: str
    runtime_version_ref: str
    trusted: tuple[str, ...] = ()  # as the driver loaded it: recorded and given trust
    allow_pickle: bool = False


@dataclass(frozen=True)
class _Raised:
    """A LooplineError raised in an actor, sent back as data: pickle rebuilds an exception
    from its positional arguments alone, which most LooplineErrors cannot take."""

    kind: type[LooplineError]
    args: tuple[Any, ...]
    state: dict[str, Any]

    @classmethod
    def of(cls, error: LooplineError) -> _Raised:
        return cls(type(error), error.args, dict(vars(error)))

    def error(self) -> LooplineError:
        error = self.kind.__new__(self.kind)
        error.args = self.args
        vars(error).update(self.state)
        return error


class _ChunkPredictor:
    """A Ray actor: the model loaded once, then chunks predicted as the local path does."""

    def __init__(self, files: dict[str, bytes], model: _Model) -> None:
        self._served: ServedModel | None = None
        self._failed: _Raised | None = None
        try:
            self._served = _load(files, model)
        except LooplineError as exc:  # e.g. MissingExtra on a worker without onnxruntime
            self._failed = _Raised.of(exc)

    def ready(self) -> _Raised | None:
        """None once the model is loaded, else the error that stopped it."""
        return self._failed

    def predict(self, batch: pa.RecordBatch, offset: int) -> pa.Table | _Raised:
        assert self._served is not None  # the pool checked ready() first
        try:
            return predict_chunk(self._served, batch, offset)
        except LooplineError as exc:
            return _Raised.of(exc)


def _load(files: dict[str, bytes], model: _Model) -> ServedModel:
    """The ServedModel of a package's files, built as `load_served` builds it."""
    from loopline.packaging import load_model
    from loopline.serving.runtime import served_model
    from loopline.store import resolve_under

    with tempfile.TemporaryDirectory(prefix="loopline-model-") as folder:
        for path, data in files.items():
            target = resolve_under(Path(folder), path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        # reads what it needs; the folder can go
        loaded = load_model(folder, trusted=list(model.trusted), allow_pickle=model.allow_pickle)
    return served_model(
        loaded,
        name=model.name,
        version_ref=model.version_ref,
        runtime=model.runtime,
        runtime_version_ref=model.runtime_version_ref,
    )


class RayPool:
    """Actors holding the model; `predict` sends them chunks and yields their outputs."""

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self._ray = ray
        self._actors = actors

    def predict(self, chunks: Iterable[tuple[int, pa.RecordBatch]]) -> Iterator[pa.Table]:
        """The output table of every (offset, batch) chunk, in input order."""
        pending: deque[tuple[int, int, Any]] = deque()
        limit = IN_FLIGHT_PER_ACTOR * len(self._actors)
        for i, (offset, batch) in enumerate(chunks):
            if len(pending) >= limit:
                yield self._result(*pending.popleft())
            actor = self._actors[i % len(self._actors)]
            pending.append((offset, batch.num_rows, actor.predict.remote(batch, offset)))
        while pending:
            yield self._result(*pending.popleft())

    def _result(self, offset: int, rows: int, answer: Any) -> pa.Table:
        table = _get(self._ray, answer, f"rows {offset}-{offset + rows - 1}")
        if isinstance(table, _Raised):
            raise table.error()
        return table


@contextlib.contextmanager
def ray_pool(
    served: ServedModel, *, address: str | None, max_actors: int | None
) -> Iterator[RayPool]:
    """A pool of actors holding `served`'s model, on the Ray cluster at `address` (else
    $RAY_ADDRESS, else a local Ray started here and stopped on exit). A Ray already
    initialized in this process is used and left running. One actor per CPU of the
    cluster, `max_actors` at most; raises the error of a model that fails to load."""
    import ray

    started = _connect(ray, address)
    try:
        files = ray.put(_package_files(served))
        model = _Model(
            served.name,
            served.version_ref,
            served.runtime,
            served.runtime_version_ref,
            served.trusted,
            served.allow_pickle,
        )
        # all the cluster's CPUs, not those free now: actors of a batch just ended may
        # still hold some for a moment, and a busy cluster's actors wait for theirs
        cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = int(cluster.get("CPU", 1))
        count = max(1, min(cpus, max_actors or cpus))
        actor_class = ray.remote(num_cpus=1)(_ChunkPredictor)
        actors: list[Any] = [actor_class.remote(files, model) for _ in range(count)]
        try:
            # wait for the models to load: their errors come first, and no part of the time
            # the batch reports is spent loading
            ready = [actor.ready.remote() for actor in actors]
            for failed in _get(ray, ready, f"loading {served.runtime_version_ref}"):
                if failed is not None:
                    raise failed.error()
            log.debug("predicting %s on %d Ray actor(s)", served.version_ref, count)
            yield RayPool(ray, actors)
        finally:
            for actor in actors:
                ray.kill(actor)
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    """Connect this process to Ray; True when this call did (and so must shut it down)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        # a Ray of our own for one batch: no dashboard, and no usage statistics sent to
        # Ray's makers (their default) unless the user asked for them
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options["include_dashboard"] = False
    try:
        ray.init(address=address or "local", **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise LooplineError(f"cannot start or reach {where}: {_first_line(exc)}") from exc
    return True


def _get(ray: Any, answers: Any, what: str) -> Any:
    """ray.get, with Ray's own failures (a worker died, an error outside loopline's)
    as a LooplineError naming what was being done."""
    try:
        return ray.get(answers)
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        raise LooplineError(f"Ray failed on {what}: {_first_line(cause)}") from exc


def _package_files(served: ServedModel) -> dict[str, bytes]:
    """The files of the package that runs for `served`, read from the artifact store
    (each blob checked against its hash as it is read)."""
    from loopline.models._packages import read_package
    from loopline.project import stores
    from loopline.registry import resolve

    opened = stores()
    version = resolve(served.runtime_version_ref, opened=opened)
    package = read_package(version.package_hash, opened)
    return {path: opened.artifacts.get_bytes(blob) for path, (blob, _) in package.files.items()}


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
