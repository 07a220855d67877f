"""Starting, logging to and ending runs: the fluent API (`ll.start_run`, `ll.log_metric`).

Runs started through one client form a stack: module-level functions log to the innermost
active run, and a run started while another is active becomes its child unless `parent`
says otherwise. `ll.*` uses the default client's stack; each `loopline.Client` has its own
(keyed on the scope it binds, see project.Scope), so a run started through client A is
never the active run of client B.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopline.config import current_user
from loopline.errors import InvalidInput, LooplineError
from loopline.lineage import register_active_run_source
from loopline.project import Scope, Stores, current_scope, release, retain, stores
from loopline.store import CodeVersion, Run, RunStatus, check_key
from loopline.tracking import _context
from loopline.tracking._buffer import MetricBuffer

if TYPE_CHECKING:
    from loopline.tracking.inputs import DataFrameInput
    from loopline.tracking.system_metrics import SystemMonitor

log = logging.getLogger(__name__)

SYSTEM_PREFIX = "_loopline/"


class ActiveRun:
    """A run this process is writing to; a context manager that ends it.

    Leaving the `with` block normally marks the run FINISHED; an exception marks it
    FAILED with the error (KeyboardInterrupt: KILLED) and is re-raised.
    """

    def __init__(self, run: Run, stores: Stores, stack: RunStack) -> None:
        self.id = run.id
        self.name = run.name
        self.experiment = run.experiment
        self._stores = stores
        self._next_step: dict[str, int] = {}
        self._checked_keys: set[str] = set()
        self._buffer = MetricBuffer(
            stores.metadata.runs.log_metric_points, stores.settings.metric_flush_interval
        )
        self._ended = False
        self._monitor: SystemMonitor | None = None  # system metrics, when asked for
        self._stack = stack  # the active runs of the client it was started through
        retain(stores)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._finish(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt):
            self._finish(RunStatus.KILLED, error="interrupted (KeyboardInterrupt)")
        else:
            self._finish(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")

    # -- logging ----------------------------------------------------------------------

    def log_param(self, key: str, value: object) -> None:
        self._stores.metadata.runs.log_params(self.id, {key: value})

    def log_params(self, values: Mapping[str, object]) -> None:
        self._stores.metadata.runs.log_params(self.id, values)

    def set_tag(self, key: str, value: object) -> None:
        self._stores.metadata.runs.set_tags(self.id, {key: value})

    def set_tags(self, values: Mapping[str, object]) -> None:
        self._stores.metadata.runs.set_tags(self.id, values)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Buffer one point; `step` defaults to one past this key's previous step."""
        if key not in self._checked_keys:
            check_key("metric", key)
            self._checked_keys.add(key)
        if type(value) is not float:
            value = _as_metric_value(key, value)
        if step is None:
            step = self._next_step.get(key, 0)
        elif type(step) is not int:
            step = _as_step(key, step)
        self._next_step[key] = step + 1
        self._buffer.append((self.id, key, value, step, time.time_ns() // 1_000_000))

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        if not isinstance(values, Mapping):
            raise InvalidInput(f"log_metrics takes a mapping of name -> number, got {values!r}")
        for key, value in values.items():
            self.log_metric(key, value, step)

    def log_artifact(
        self,
        local_path: str | Path,
        artifact_path: str | None = None,
        *,
        follow_links: bool = False,
    ) -> list[str]:
        """Store a file or a directory (recursively) as artifacts of this run.

        A symbolic link is refused (InvalidPath) unless `follow_links=True`, which stores
        the content it points to.
        """
        from loopline.tracking.artifacts import log_artifact_for_run

        return log_artifact_for_run(
            self.id, local_path, artifact_path, follow_links=follow_links, stores=self._stores
        )

    def log_text(self, text: str, artifact_file: str) -> str:
        """Store `text` as the UTF-8 artifact `artifact_file`; returns its path."""
        from loopline.tracking import content

        return content.log_text(self.id, self._stores, text, artifact_file)

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> str:
        """Store a dict as JSON (`.json`) or YAML (`.yaml`, `.yml`); returns its path."""
        from loopline.tracking import content

        return content.log_dict(self.id, self._stores, dictionary, artifact_file)

    def log_figure(
        self, figure: Any, artifact_file: str, *, save_kwargs: Mapping[str, Any] | None = None
    ) -> str:
        """Store a matplotlib or plotly figure; the extension picks the format."""
        from loopline.tracking import content

        return content.log_figure(self.id, self._stores, figure, artifact_file, save_kwargs)

    def log_table(self, data: Any, artifact_file: str) -> str:
        """Store a DataFrame (or a dict of columns) as a `.parquet` artifact."""
        from loopline.tracking import content

        return content.log_table(self.id, self._stores, data, artifact_file)

    def log_input(
        self,
        dataset: Any,
        context: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
    ) -> DataFrameInput:
        """Record a DataFrame's digest, schema and profile as an input of this run."""
        from loopline.tracking import inputs

        return inputs.log_input(self.id, self._stores, dataset, context, tags, name)

    def flush(self) -> None:
        """Write buffered metric points now."""
        self._buffer.flush()

    # -- ending -----------------------------------------------------------------------

    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> Run:
        """Flush, then record the final status. Ending twice is a no-op."""
        run = self._finish(status, error, read_back=True)
        return run if run is not None else self._stores.metadata.runs.get_run(self.id)

    def _finish(
        self, status: RunStatus | str, error: str | None = None, *, read_back: bool = False
    ) -> Run | None:
        """`end`; the run is read back only if asked (a `with` block discards it), and
        before the stores may close."""
        if self._ended:
            return None
        self._ended = True
        self._stack.remove(self)
        if self._monitor is not None:
            self._monitor.stop()  # before the buffer closes: no sample after it
        try:
            try:
                self._buffer.close()
            except LooplineError:
                self._stores.metadata.runs.mark_run_ended(
                    self.id, RunStatus.FAILED, error="metric flush failed"
                )
                raise
            self._stores.metadata.runs.mark_run_ended(self.id, status, error=error)
            return self._stores.metadata.runs.get_run(self.id) if read_back else None
        finally:
            # the client was closed, or the default moved to other stores, meanwhile
            if release(self._stores):
                self._stores.metadata.close()

    @property
    def info(self) -> Run:
        """The run as stored now (params, latest metrics, tags)."""
        self.flush()
        return self._stores.metadata.runs.get_run(self.id)


# -- each client's stack of active runs ----------------------------------------------------


class RunStack:
    """The active runs started through one client, innermost last."""

    def __init__(self) -> None:
        self._runs: list[ActiveRun] = []
        self._lock = threading.Lock()

    def push(self, run: ActiveRun) -> None:
        with self._lock, _stacks_lock:
            self._runs.append(run)
            _holding.add(self)

    def remove(self, run: ActiveRun) -> None:
        with self._lock, _stacks_lock:
            if run in self._runs:
                self._runs.remove(run)
            if not self._runs:
                _holding.discard(self)

    def top(self) -> ActiveRun | None:
        with self._lock:
            return self._runs[-1] if self._runs else None

    def runs(self) -> list[ActiveRun]:
        """The active runs, outermost first."""
        with self._lock:
            return list(self._runs)


_stacks_lock = threading.Lock()
_holding: set[RunStack] = set()  # the stacks with active runs, which end at exit
_client_stacks: weakref.WeakKeyDictionary[Scope, RunStack] = weakref.WeakKeyDictionary()
_default_stack = RunStack()  # the default client's (`ll.*`)


def _stack() -> RunStack:
    """The active runs of the client the running code was called through."""
    scope = current_scope()
    if scope is None:
        return _default_stack
    with _stacks_lock:
        found = _client_stacks.get(scope)
    if found is None:
        found = RunStack()
        with _stacks_lock:
            found = _client_stacks.setdefault(scope, found)
    return found


def start_run(
    experiment: str = "default",
    *,
    name: str | None = None,
    params: Mapping[str, object] | None = None,
    tags: Mapping[str, object] | None = None,
    parent: ActiveRun | Run | str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a run in `experiment` (created on first use) and make it the active run.

    Records on its own the git commit, branch, dirty flag and uncommitted diff, the
    command line, the Python version and the installed packages. `parent` (a run or a
    run id) nests the run; by default a run started inside another becomes its child.
    `log_system_metrics=True` samples CPU, memory, disk, network (and GPU) into the run
    until it ends (default: LOOPLINE_ENABLE_SYSTEM_METRICS_LOGGING; see system_metrics).
    """
    from loopline.tracking.system_metrics import monitor_for

    monitor = monitor_for(log_system_metrics)  # before the run: a bad setting leaves none
    opened = stores()
    exp = opened.metadata.runs.get_or_create_experiment(experiment)
    parent_id = _parent_id(parent)
    git = _context.git_state(Path.cwd())
    patch_hash = opened.artifacts.put_bytes(git.patch).hash if git.patch else None
    packages = _context.installed_packages().encode()
    packages_blob = opened.artifacts.put_bytes(packages)
    system = [(SYSTEM_PREFIX + "requirements.txt", packages_blob.hash, packages_blob.size)]
    if git.patch and patch_hash:
        system.append((SYSTEM_PREFIX + "code.patch", patch_hash, len(git.patch)))
    # One write transaction for the run, its params, tags and system artifacts: a
    # tuning loop pays per transaction, and a run never appears half-recorded.
    run = opened.metadata.runs.create_run(
        exp.id,
        name=name,
        parent_id=parent_id,
        user=current_user(),
        source=_context.command_line(),
        code=CodeVersion(git.commit, git.branch, git.dirty, patch_hash),
        python_version=_context.python_version(),
        packages_hash=packages_blob.hash,
        params=params,
        tags=tags,
        artifacts=system,
    )
    stack = _stack()
    active = ActiveRun(run, opened, stack)
    stack.push(active)
    if monitor is not None:
        active._monitor = monitor.start(active.log_metrics, run.id)
    return active


def active_run() -> ActiveRun | None:
    """The innermost run started (through this client) and not yet ended."""
    return _stack().top()


def _active_run_id() -> str | None:
    run = active_run()
    return None if run is None else run.id


register_active_run_source(_active_run_id)


def end_run(status: RunStatus | str = RunStatus.FINISHED, *, run_id: str | None = None) -> Run:
    """End the active run, or any run by id (e.g. one whose process was killed)."""
    if run_id is None:
        return _require_active().end(status)
    mine = next((r for r in _stack().runs() if r.id == run_id), None)
    if mine is not None:
        return mine.end(status)
    return stores().metadata.runs.end_run(run_id, status)


def log_param(key: str, value: object) -> None:
    _require_active().log_param(key, value)


def log_params(values: Mapping[str, object]) -> None:
    _require_active().log_params(values)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Buffer a metric point for the active run; never waits on the database."""
    _require_active().log_metric(key, value, step)


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    _require_active().log_metrics(values, step)


def set_tag(key: str, value: object) -> None:
    _require_active().set_tag(key, value)


def set_tags(values: Mapping[str, object]) -> None:
    _require_active().set_tags(values)


def log_artifact(
    local_path: str | Path, artifact_path: str | None = None, *, follow_links: bool = False
) -> list[str]:
    """Store a file or directory as artifacts of the active run; returns the paths.

    Symbolic links are refused unless `follow_links=True` (then their content is stored).
    """
    return _require_active().log_artifact(local_path, artifact_path, follow_links=follow_links)


def log_text(text: str, artifact_file: str) -> str:
    """Store `text` as a UTF-8 artifact of the active run (MLflow's `log_text`)."""
    return _require_active().log_text(text, artifact_file)


def log_dict(dictionary: Mapping[str, Any], artifact_file: str) -> str:
    """Store a dict as JSON or YAML, by `artifact_file`'s extension (MLflow's `log_dict`)."""
    return _require_active().log_dict(dictionary, artifact_file)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: Mapping[str, Any] | None = None
) -> str:
    """Store a matplotlib or plotly figure as png/svg/pdf/html/..., by extension."""
    return _require_active().log_figure(figure, artifact_file, save_kwargs=save_kwargs)


def log_table(data: Any, artifact_file: str) -> str:
    """Store a DataFrame (or dict of columns) as a Parquet artifact of the active run."""
    return _require_active().log_table(data, artifact_file)


def log_input(
    dataset: Any,
    context: str | None = None,
    tags: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
) -> DataFrameInput:
    """Record a DataFrame's digest, schema and profile as an input of the active run,
    without versioning its rows; the same content logged again is one input."""
    return _require_active().log_input(dataset, context, tags, name=name)


def flush() -> None:
    """Write every buffered metric point of every active run (of this client) now."""
    for run in _stack().runs():
        run.flush()


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise InvalidInput("no active run", hint="wrap your code in `with ll.start_run(...):`")
    return run


def _parent_id(parent: ActiveRun | Run | str | None) -> str | None:
    if parent is None:
        current = active_run()
        return current.id if current is not None else None
    if isinstance(parent, str):
        return stores().metadata.runs.resolve_run_id(parent)
    return parent.id


def _as_metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not _is_real(value):
        raise InvalidInput(
            f"metric {key!r} must be a number, got {type(value).__name__}: {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def _is_real(value: object) -> bool:
    import numbers

    return isinstance(value, numbers.Real)


def _as_step(key: str, step: object) -> int:
    import numbers

    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"step of metric {key!r} must be an integer, got {step!r}")
    return int(step)


# -- ending runs when the process exits --------------------------------------------------

_uncaught: list[BaseException] = []
_previous_hook = sys.excepthook


def _record_uncaught(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _uncaught.append(exc)
    _previous_hook(kind, exc, tb)


sys.excepthook = _record_uncaught


@atexit.register
def _end_runs_at_exit() -> None:
    """Runs still active at exit end FINISHED, or FAILED if an exception escaped."""
    with _stacks_lock:
        holding = list(_holding)
    leftover = [run for stack in holding for run in reversed(stack.runs())]
    for run in leftover:
        try:
            if _uncaught:
                exc = _uncaught[-1]
                run.end(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            else:
                run.end(RunStatus.FINISHED)
        except Exception as exc:
            log.error("could not end run %s at exit: %s", run.id, exc)
