"""Served models: a registered version, loaded in the fastest runtime it allows.

`load_served("churn@champion")` resolves the reference and, when the version has a
parity-checked ONNX export (or is itself an ONNX model), serves it with onnxruntime
directly; otherwise with its native flavor (see `_runners` for the fast paths). The
answering version is always the registered model the client asked for (`version_ref`,
e.g. "churn/1"); `runtime_version_ref` names the version whose bytes run ("churn/2",
its ONNX export).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError
from loopline.predictions import Block
from loopline.serving._inputs import InputSchema, rows_block
from loopline.serving._runners import (
    FrameRunner,
    OnnxRunner,
    Runner,
    probe_rows,
    sklearn_runner,
)

if TYPE_CHECKING:
    import numpy as np

    from loopline.packaging import ColumnSpec, LoadedModel
    from loopline.project import Stores
    from loopline.registry import ModelVersion

log = logging.getLogger(__name__)

ONNX_RUNTIME = "onnxruntime"
WARM_UP_CALLS = 5


@dataclass(frozen=True)
class Prediction:
    """What a model returned for some rows: labels or values, and class probabilities."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None

    def rows(self, start: int, stop: int) -> Prediction:
        """The predictions of rows [start, stop) (a view, no copy)."""
        proba = None if self.probabilities is None else self.probabilities[start:stop]
        return Prediction(self.predictions[start:stop], proba)


@dataclass(frozen=True)
class ServingPlan:
    """Which registered version answers and which version's bytes run, in which runtime."""

    version: ModelVersion
    runtime_version: ModelVersion
    runtime: str
    note: str | None = None  # why it runs natively under --runtime auto, or "converted at load"

    def describe(self) -> str:
        """One line for logs: 'churn/1 with onnxruntime (ONNX export churn/2)'."""
        if self.runtime_version.id == self.version.id:
            text = f"{self.version.ref} with {self.runtime}"
        else:
            text = (
                f"{self.version.ref} with {self.runtime} (ONNX export {self.runtime_version.ref})"
            )
        return text if self.note is None else f"{text} [{self.note}]"


class ServedModel:
    """One model version, loaded and ready to predict on JSON rows.

    Attributes: `name` (the registered model), `version_ref` (the version that answers),
    `runtime` ("onnxruntime" or the native flavor), `runtime_version_ref` (the version
    whose bytes run), `inputs` (signature columns), `classes`, `has_proba`, `path` (how
    requests reach the model), `ready` (True once `warm_up` has run) and `predict_ms`
    (a one-row predict, timed by `warm_up`).
    """

    def __init__(
        self,
        *,
        name: str,
        version_ref: str,
        runtime: str,
        runtime_version_ref: str,
        inputs: Sequence[ColumnSpec],
        classes: Sequence[Any] | None,
        runner: Runner,
    ) -> None:
        self.name = name
        self.version_ref = version_ref
        self.runtime = runtime
        self.runtime_version_ref = runtime_version_ref
        self.schema = InputSchema(tuple(inputs))
        self.inputs = self.schema.specs
        self.classes = None if classes is None else list(classes)
        self.has_proba = runner.has_proba
        self.path = runner.path
        self.ready = False
        self.predict_ms: float | None = None  # a one-row predict, timed by warm_up()
        # the trust it was loaded with (recorded and given): Ray actors load it the same way
        self.trusted: tuple[str, ...] = ()
        self.allow_pickle = False
        self._runner = runner

    @property
    def input_names(self) -> tuple[str, ...]:
        """The input columns, in signature order."""
        return self.schema.names

    @property
    def input_types(self) -> tuple[str, ...]:
        """The signature type of each input column ("double", "long", "string", ...)."""
        return tuple(spec.type for spec in self.inputs)

    def predict_rows(self, rows: Sequence[dict[str, Any]] | Block) -> Prediction:
        """Predictions for a list of {field: value} rows (checked first) or a checked Block.

        Raises InvalidField (422) naming the field and row of a value that breaks the
        signature, InvalidInput (422) when the model itself refuses the input.
        """
        block = rows if isinstance(rows, Block) else rows_block(list(rows), self.schema, "rows")
        try:
            labels, proba = self._runner.run(block)
        except LooplineError:
            raise
        except Exception as exc:  # the model's own error on input that passed the checks
            log.warning(
                "%s raised on %d row(s)", self.runtime_version_ref, block.n_rows, exc_info=True
            )
            raise InvalidInput(
                f"the model could not predict on this input: {_first_line(exc)}"
            ) from exc
        if len(labels) != block.n_rows or (proba is not None and len(proba) != block.n_rows):
            raise InvalidInput(
                f"the model returned {len(labels)} predictions for {block.n_rows} rows"
            )
        return Prediction(labels, proba)

    def warm_up(self) -> None:
        """Predict on synthetic rows (first calls allocate and compile), time a one-row
        predict (`predict_ms`), then be ready.

        A model that refuses the synthetic values (say, an unseen category) is still
        ready: it has loaded, and real requests will tell.
        """
        started = time.perf_counter()
        try:
            for count in (2, 1):
                self.predict_rows(probe_rows(self.schema, count))
            block = rows_block(probe_rows(self.schema, 1), self.schema, "probe")
            times = []
            for _ in range(WARM_UP_CALLS):
                begun = time.perf_counter()
                self.predict_rows(block)
                times.append(time.perf_counter() - begun)
            self.predict_ms = sorted(times)[len(times) // 2] * 1000.0
        except InvalidInput as exc:
            log.warning("warm-up of %s on synthetic rows: %s", self.version_ref, exc.message)
        self.ready = True
        log.debug(
            "%s warmed up in %.1f ms", self.version_ref, (time.perf_counter() - started) * 1e3
        )

    def __repr__(self) -> str:
        return f"<ServedModel {self.version_ref} via {self.runtime} ({self.runtime_version_ref})>"


def plan_served(ref: str, *, prefer_onnx: bool = True, opened: Stores | None = None) -> ServingPlan:
    """Which version answers `ref` and in which runtime, without loading anything.

    An ONNX export named directly answers as its source version; `prefer_onnx=False`
    serves the source's native flavor instead (a model registered as ONNX has no other).
    """
    from loopline.project import stores
    from loopline.registry import resolve

    opened = opened or stores()
    resolved = resolve(ref, opened=opened)
    source = resolved
    if _is_export(resolved):
        assert resolved.source_version_id is not None
        source = opened.metadata.models.get_version_by_id(resolved.source_version_id)
    if prefer_onnx:
        export = resolved if resolved.flavor == "onnx" else _onnx_export(source, opened)
        if export is not None:
            return ServingPlan(source, export, ONNX_RUNTIME)
    runtime = ONNX_RUNTIME if source.flavor == "onnx" else source.flavor
    return ServingPlan(source, source, runtime)


def load_served(
    ref: str,
    *,
    prefer_onnx: bool = True,
    trusted: list[str] | None = None,
    warm_up: bool = True,
    runtime: str | None = None,
    allow_pickle: bool = False,
) -> ServedModel:
    """A ServedModel for a model reference ("churn", "churn/3", "churn@champion").

    With `prefer_onnx` (the default) a parity-checked ONNX export runs in onnxruntime;
    else the native flavor. `runtime` ("auto", "native" or "onnx") instead also converts
    a version without an export (see `loopline.serving._runtime`). `warm_up=False`
    leaves `ready` False for the caller to warm up later (the HTTP app does it at startup).
    The version loads as `loopline.models.load` loads it: trusting the types recorded
    with it and `trusted`; a pickle only with `allow_pickle`.

    Raises NotFound for an unknown reference, InvalidInput for a model without an input
    signature, UnsafeModel / MissingExtra as `loopline.models.load` does.
    """
    from loopline.models import load_version, recorded_trust
    from loopline.packaging import check_trusted, merge_trusted
    from loopline.project import stores

    opened = stores()
    trusted = check_trusted(trusted)
    if runtime is None:
        plan = plan_served(ref, prefer_onnx=prefer_onnx, opened=opened)
    else:
        from loopline.serving._runtime import plan_runtime

        plan = plan_runtime(ref, runtime, trusted=trusted, opened=opened)
    loaded = load_version(
        plan.runtime_version, trusted=trusted, allow_pickle=allow_pickle, opened=opened
    )
    served = served_model(
        loaded,
        name=plan.version.model,
        version_ref=plan.version.ref,
        runtime=plan.runtime,
        runtime_version_ref=plan.runtime_version.ref,
    )
    served.trusted = tuple(merge_trusted(recorded_trust(plan.runtime_version), trusted))
    served.allow_pickle = allow_pickle
    log.debug("loaded %s; requests go %s", plan.describe(), served.path)
    if warm_up:
        served.warm_up()
    return served


def served_model(
    loaded: LoadedModel, *, name: str, version_ref: str, runtime: str, runtime_version_ref: str
) -> ServedModel:
    """A ServedModel around a loaded package: onnxruntime directly for an ONNX package,
    else the fastest native path its flavor allows (see `_runners`)."""
    schema = InputSchema(loaded.signature.inputs)
    runner: Runner
    if loaded.flavor == "onnx":
        graph_labels = loaded.manifest.flavor_options.get("graph_labels")
        try:
            runner = OnnxRunner(loaded.raw, schema, loaded.classes, graph_labels)
        except ValueError as exc:
            raise InvalidInput(f"cannot serve {runtime_version_ref}: {exc}") from exc
    else:
        runner = sklearn_runner(loaded, schema) or FrameRunner(loaded, schema)
    return ServedModel(
        name=name,
        version_ref=version_ref,
        runtime=runtime,
        runtime_version_ref=runtime_version_ref,
        inputs=schema.specs,
        classes=loaded.classes,
        runner=runner,
    )


def _is_export(version: ModelVersion) -> bool:
    return version.source_version_id is not None and "export" in version.extra


def _onnx_export(source: ModelVersion, opened: Stores) -> ModelVersion | None:
    """The newest live, parity-checked ONNX export of `source` (unquantized first)."""
    from loopline.registry import ModelStatus

    exports = [
        version
        for version in opened.metadata.models.versions_from_source(source.id)
        if version.flavor == "onnx"
        and version.status != ModelStatus.ARCHIVED
        and _parity_passed(version.extra)
    ]
    exports.sort(key=lambda v: v.extra["export"].get("quantize") is not None)
    return exports[0] if exports else None


def _parity_passed(extra: dict[str, Any]) -> bool:
    export = extra.get("export")
    parity = export.get("parity") if isinstance(export, dict) else None
    return isinstance(parity, dict) and parity.get("passed") is True


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
