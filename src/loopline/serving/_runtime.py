"""Which runtime serves a version: `--runtime auto|native|onnx`.

`auto` (the default) serves the version's parity-checked ONNX export when it has one.
Without one, the version is converted now with the converter of `loopline models export`,
checked for parity on its reference rows (the run's training dataset, else the input
example kept when it was logged) with the export's tolerance and criteria, and
registered exactly as `models export` registers it: the next load finds the export, and
`models ls`/`models show` list it. When conversion or parity fails, the native flavor
serves and the reason is logged and printed on the start-up line. `onnx` is the same
but a failure is an error; `native` never uses ONNX.

Conversion happens once. The serving command plans every deployment in its own process
before any worker starts, so workers only load the cached export. A worker that meets a
new version later (a stored deployment changed) converts it under a file lock in the
project's state folder and looks for an export again once it holds the lock, so two
workers never convert the same version side by side.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput, LooplineError, NotFound, UnsafeModel
from loopline.serving.runtime import ONNX_RUNTIME, ServingPlan, plan_served

if TYPE_CHECKING:
    from loopline.project import Stores
    from loopline.registry import ModelVersion

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "native", "onnx")
# The flavors `loopline models export` converts (see loopline.packaging.export).
CONVERTIBLE = ("sklearn", "xgboost", "lightgbm")
LOCK_FOLDER = "locks"


def check_runtime(runtime: str) -> str:
    """`runtime` if it is auto, native or onnx; else InvalidInput (exit 2)."""
    if runtime not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    return runtime


def plan_runtime(
    ref: str,
    runtime: str = "auto",
    *,
    trusted: list[str] | None = None,
    opened: Stores | None = None,
) -> ServingPlan:
    """Which version answers `ref` and which bytes run, converting to ONNX if needed.

    With `auto` or `onnx` and no parity-checked export, the version is converted and the
    export registered (see the module docstring). The plan's `note` says why a version
    is served natively under `auto`, or that it was converted now.

    Raises InvalidInput for an unknown runtime, or under `onnx` when the version cannot
    be converted or its conversion fails the parity check; NotFound for an unknown
    reference; UnsafeModel when the model needs trust it was not given.
    """
    from loopline.project import stores

    check_runtime(runtime)
    opened = opened or stores()
    if runtime == "native":
        return plan_served(ref, prefer_onnx=False, opened=opened)
    plan = plan_served(ref, prefer_onnx=True, opened=opened)
    if plan.runtime == ONNX_RUNTIME:
        return plan
    try:
        export, converted = _convert_once(plan.version, trusted, opened)
    except (NotFound, UnsafeModel):
        raise  # the native load would fail the same way: say so, do not fall back
    except Exception as exc:
        reason = exc.message if isinstance(exc, LooplineError) else _first_line(exc)
        if runtime == "onnx":
            raise InvalidInput(
                f"cannot serve {plan.version.ref} with --runtime onnx: {reason}",
                hint="serve it with --runtime auto (native when ONNX fails) or native",
            ) from exc
        log.warning("%s runs natively (%s): %s", plan.version.ref, plan.runtime, reason)
        return replace(plan, note=f"native: {reason}")
    return ServingPlan(
        plan.version, export, ONNX_RUNTIME, note="converted at load" if converted else None
    )


def _convert_once(
    source: ModelVersion, trusted: list[str] | None, opened: Stores
) -> tuple[ModelVersion, bool]:
    """The parity-checked ONNX export of `source`, and whether it was converted now
    (False when another process made it while this one waited for the lock)."""
    from loopline.models import export

    if source.flavor not in CONVERTIBLE:
        raise InvalidInput(
            f"flavor '{source.flavor}' has no ONNX converter (only {', '.join(CONVERTIBLE)})"
        )
    with _conversion_lock(source, opened):
        made = plan_served(source.ref, prefer_onnx=True, opened=opened)
        if made.runtime == ONNX_RUNTIME:
            return made.runtime_version, False
        log.info("converting %s to ONNX (no export yet) ...", source.ref)
        result = export(source, trusted=trusted)
    parity = result.parity
    log.info(
        "converted %s to ONNX as %s: parity on %d reference rows, max |diff| %.3g (tolerance %g)",
        source.ref,
        result.version.ref,
        parity.rows,
        parity.max_abs_diff_proba
        if parity.max_abs_diff_proba is not None
        else parity.max_abs_diff_prediction,
        parity.tolerance,
    )
    return result.version, True


@contextlib.contextmanager
def _conversion_lock(source: ModelVersion, opened: Stores) -> Iterator[None]:
    """An exclusive file lock per source version in the project's state folder (no lock
    where the platform has no flock: the conversion is then merely repeated)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = opened.settings.state_dir / LOCK_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"onnx-{_safe(source.id)}.lock"
    with path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _safe(identifier: str) -> str:
    """An opaque id as a file name: keep letters, digits, '-' and '_' only."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in identifier)[:100]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
