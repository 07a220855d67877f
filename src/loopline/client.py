"""`loopline.Client`: one project's opened stores, with the module API as methods.

As httpx's `Client` beside its module functions: `ll.log_metric(...)` uses the default
client (the project around the working directory, or the one `ll.configure` named);
`ll.Client(project="other")` holds the stores of another, and two clients work side by
side in one process:

    with ll.Client(project="fraud") as fraud:
        with fraud.start_run(experiment="baseline"):
            fraud.log_metric("auc", 0.93)
        fraud.models.log_model(model, name="fraud")

Each call binds the client's stores (and its own stack of active runs) for its duration
(see `project.bound`), so the area code keeps asking `stores()` and never cares which
stores it holds: local ones here, a remote server's later. Importing this module opens
nothing and imports no area; each method imports its area on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from loopline.config import Settings
from loopline.errors import InvalidInput
from loopline.project import Scope, Stores, bound, open_stores, project_settings, release, retain

if TYPE_CHECKING:
    import pandas as pd

    from loopline._client_areas import (
        Cards,
        Data,
        Deployments,
        Evaluation,
        Models,
        Monitoring,
        Promotion,
        Registry,
    )
    from loopline.evaluation import Evaluation as EvaluationReport
    from loopline.monitoring.trace import Trace
    from loopline.registry import ModelRef, ModelVersion
    from loopline.store import Experiment, MetricPoint, Run, RunLink, RunStatus
    from loopline.tracking import ActiveRun, DataFrameInput

P = ParamSpec("P")
R = TypeVar("R")


class Client:
    """A project's stores, opened once, and every area's functions called through them.

    `project` is a directory whose settings are loaded (default: the project around the
    working directory, found once, now); `store_uri` / `artifact_uri` override them;
    `server` (with `token`, default LOOPLINE_TOKEN) works through a platform server.
    Close it (or use it as a context manager) to release the database connections.
    """

    def __init__(
        self,
        project: str | Path | None = None,
        *,
        store_uri: str | None = None,
        artifact_uri: str | None = None,
        server: str | None = None,
        token: str | None = None,
    ) -> None:
        settings = project_settings(
            project, store_uri=store_uri, artifact_uri=artifact_uri, server=server, token=token
        )
        self._stores = open_stores(settings)
        self._scope = Scope(self._stores)
        self._closed = False
        retain(self._stores)  # a run still active at close() keeps them open until it ends

    def __repr__(self) -> str:
        return f"<Client project={str(self._stores.settings.root)!r}>"

    @property
    def stores(self) -> Stores:
        """The opened metadata and artifact stores."""
        return self._stores

    @property
    def settings(self) -> Settings:
        return self._stores.settings

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the stores (once no run started through this client is still active)."""
        if self._closed:
            return
        self._closed = True
        if release(self._stores):
            self._stores.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call any area function with this client's stores (and active runs) bound."""
        self._check_open()
        with bound(self._scope):
            return function(*args, **kwargs)

    @contextmanager
    def bound(self) -> Iterator[Client]:
        """Run a block as if each call in it went through this client: `ll.*` and the
        area functions use its stores and its active runs (in this thread or task)."""
        self._check_open()
        with bound(self._scope):
            yield self

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInput(f"{self!r} is closed", hint="open a new ll.Client(...)")

    # -- the areas ---------------------------------------------------------------------

    @cached_property
    def data(self) -> Data:
        """Datasets: `client.data.add`, `.load`, `.log`, `.checkout`, `.validate`, ..."""
        from loopline._client_areas import Data

        return Data(self)

    @cached_property
    def models(self) -> Models:
        """Models: `client.models.log_model`, `.load`, `.export`, `.model_lineage`, ..."""
        from loopline._client_areas import Models

        return Models(self)

    @cached_property
    def registry(self) -> Registry:
        """The registry: `client.registry.set_alias`, `.list_versions`, `.audit_log`, ..."""
        from loopline._client_areas import Registry

        return Registry(self)

    @cached_property
    def evaluation(self) -> Evaluation:
        """Stored evaluations: `client.evaluation.latest_evaluation`, ..."""
        from loopline._client_areas import Evaluation

        return Evaluation(self)

    @cached_property
    def cards(self) -> Cards:
        """Model cards: `client.cards.render_card`, `.stored_card`, ..."""
        from loopline._client_areas import Cards

        return Cards(self)

    @cached_property
    def promotion(self) -> Promotion:
        """Gates and promotion: `client.promotion.promote`, `.check_gates`, `.approve`."""
        from loopline._client_areas import Promotion

        return Promotion(self)

    @cached_property
    def deployments(self) -> Deployments:
        """Deployments: `client.deployments.create_deployment`, `.rollback_deployment`, ..."""
        from loopline._client_areas import Deployments

        return Deployments(self)

    @cached_property
    def monitoring(self) -> Monitoring:
        """Monitoring and the loop: `client.monitoring.run`, `.drift`, `.list_reports`,
        `.watch_once`, `.run_loop`, `.show_loop`, ..."""
        from loopline._client_areas import Monitoring

        return Monitoring(self)

    def evaluate(
        self,
        model: str | ModelRef | ModelVersion,
        data: str | pd.DataFrame,
        *,
        target: str,
        slices: Sequence[str] = (),
        sensitive: Sequence[str] = (),
        task: str | None = None,
        trusted: list[str] | None = None,
        allow_pickle: bool = False,
    ) -> EvaluationReport:
        """`ll.evaluate` in this client's project."""
        from loopline.evaluation import evaluate

        return self.call(
            evaluate,
            model,
            data,
            target=target,
            slices=slices,
            sensitive=sensitive,
            task=task,
            trusted=trusted,
            allow_pickle=allow_pickle,
        )

    def trace(
        self, request_id: str, *, row: int | None = None, deployment: str | None = None
    ) -> Trace:
        """`ll.trace` in this client's project: one logged prediction and everything
        behind it."""
        from loopline.monitoring.trace import trace

        return self.call(trace, request_id, row=row, deployment=deployment)

    # -- tracking: runs started through this client ------------------------------------

    def start_run(
        self,
        experiment: str = "default",
        *,
        name: str | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
        parent: ActiveRun | Run | str | None = None,
        log_system_metrics: bool | None = None,
    ) -> ActiveRun:
        """Start a run; it is the active run of this client only (`ll.start_run`)."""
        from loopline.tracking import start_run

        return self.call(
            start_run,
            experiment,
            name=name,
            params=params,
            tags=tags,
            parent=parent,
            log_system_metrics=log_system_metrics,
        )

    def active_run(self) -> ActiveRun | None:
        """The innermost run started through this client and not yet ended."""
        from loopline.tracking import active_run

        return self.call(active_run)

    def end_run(self, status: RunStatus | str = "FINISHED", *, run_id: str | None = None) -> Run:
        """End this client's active run, or any run by id."""
        from loopline.tracking import end_run

        return self.call(end_run, status, run_id=run_id)

    def log_param(self, key: str, value: object) -> None:
        from loopline.tracking import log_param

        self.call(log_param, key, value)

    def log_params(self, values: Mapping[str, object]) -> None:
        from loopline.tracking import log_params

        self.call(log_params, values)

    def set_tag(self, key: str, value: object) -> None:
        from loopline.tracking import set_tag

        self.call(set_tag, key, value)

    def set_tags(self, values: Mapping[str, object]) -> None:
        from loopline.tracking import set_tags

        self.call(set_tags, values)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Buffer a metric point for this client's active run."""
        from loopline.tracking import log_metric

        self.call(log_metric, key, value, step)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        from loopline.tracking import log_metrics

        self.call(log_metrics, values, step)

    def log_artifact(
        self,
        local_path: str | Path,
        artifact_path: str | None = None,
        *,
        follow_links: bool = False,
    ) -> list[str]:
        from loopline.tracking import log_artifact

        return self.call(log_artifact, local_path, artifact_path, follow_links=follow_links)

    def log_text(self, text: str, artifact_file: str) -> str:
        from loopline.tracking import log_text

        return self.call(log_text, text, artifact_file)

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> str:
        from loopline.tracking import log_dict

        return self.call(log_dict, dictionary, artifact_file)

    def log_figure(
        self, figure: Any, artifact_file: str, *, save_kwargs: Mapping[str, Any] | None = None
    ) -> str:
        from loopline.tracking import log_figure

        return self.call(log_figure, figure, artifact_file, save_kwargs=save_kwargs)

    def log_table(self, data: Any, artifact_file: str) -> str:
        from loopline.tracking import log_table

        return self.call(log_table, data, artifact_file)

    def log_input(
        self,
        dataset: Any,
        context: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
    ) -> DataFrameInput:
        from loopline.tracking import log_input

        return self.call(log_input, dataset, context, tags, name=name)

    def flush(self) -> None:
        """Write the buffered metric points of this client's active runs now."""
        from loopline.tracking import flush

        self.call(flush)

    # -- tracking: reading runs --------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        from loopline.tracking import get_run

        return self.call(get_run, run_id)

    @overload
    def search_runs(
        self,
        experiment: str | Sequence[str] | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | str | None = ...,
        max_results: int | None = ...,
        output: Literal["runs"] = ...,
        include_deleted: bool = ...,
    ) -> list[Run]: ...

    @overload
    def search_runs(
        self,
        experiment: str | Sequence[str] | None = ...,
        filter: str | None = ...,
        order_by: Sequence[str] | str | None = ...,
        max_results: int | None = ...,
        *,
        output: Literal["pandas"],
        include_deleted: bool = ...,
    ) -> pd.DataFrame: ...

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int | None = None,
        output: Literal["runs", "pandas"] = "runs",
        include_deleted: bool = False,
    ) -> list[Run] | pd.DataFrame:
        """`ll.search_runs` in this client's project."""
        from loopline.tracking import search_runs

        search: Callable[..., list[Run] | pd.DataFrame] = search_runs  # overloaded
        return self.call(
            search,
            experiment,
            filter,
            order_by,
            max_results,
            output,
            include_deleted,
        )

    def list_experiments(self) -> list[Experiment]:
        from loopline.tracking import list_experiments

        return self.call(list_experiments)

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        from loopline.tracking import get_metric_history

        return self.call(get_metric_history, run_id, key)

    def delete_run(self, run_id: str) -> None:
        from loopline.tracking import delete_run

        self.call(delete_run, run_id)

    def restore_run(self, run_id: str) -> None:
        from loopline.tracking import restore_run

        self.call(restore_run, run_id)

    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[RunLink]:
        from loopline.tracking import list_artifacts

        return self.call(list_artifacts, run_id, prefix)

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> list[Path]:
        from loopline.tracking import download_artifacts

        return self.call(download_artifacts, run_id, path, dest)
