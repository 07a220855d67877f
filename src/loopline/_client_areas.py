"""The area namespaces of `loopline.Client`: `client.data`, `client.models`, ...

Each namespace names an area's public functions; reading one through a client gives the
function with the same signature (mypy sees it, by ParamSpec), called with the client's
stores bound. Imported on first use of a namespace: it imports every area.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from loopline import cards, data, evaluation, models, monitoring, promotion, registry
from loopline.loop import canary, retrain
from loopline.loop.watch import watch_once
from loopline.serving import deployments

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopline.client import Client

P = ParamSpec("P")
R = TypeVar("R")


class _Area:
    """One area's functions, as seen through one client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"


class _Through(Generic[P, R]):
    """A namespace attribute: the area function, called through the namespace's client."""

    def __init__(self, function: Callable[P, R]) -> None:
        self._function = function

    @overload
    def __get__(self, area: None, owner: type[_Area]) -> _Through[P, R]: ...
    @overload
    def __get__(self, area: _Area, owner: type[_Area]) -> Callable[P, R]: ...

    def __get__(self, area: _Area | None, owner: type[_Area]) -> _Through[P, R] | Callable[P, R]:
        if area is None:
            return self
        function, client = self._function, area._client

        @functools.wraps(function)
        def through_client(*args: P.args, **kwargs: P.kwargs) -> R:
            return client.call(function, *args, **kwargs)

        return through_client


class Data(_Area):
    """`loopline.data` through a client."""

    add = _Through(data.add)
    checkout = _Through(data.checkout)
    diff = _Through(data.diff)
    expect = _Through(data.expect)
    get = _Through(data.get)
    history = _Through(data.history)
    latest_validations = _Through(data.latest_validations)
    list_datasets = _Through(data.list_datasets)
    log = _Through(data.log)
    manifest_of = _Through(data.manifest_of)
    profile_of = _Through(data.profile_of)
    pull = _Through(data.pull)
    push = _Through(data.push)
    read_validation = _Through(data.read_validation)
    resolve = _Through(data.resolve)
    validate = _Through(data.validate)

    @overload
    def load(self, ref: str, *, as_: Literal["pandas"] = ...) -> pd.DataFrame: ...
    @overload
    def load(self, ref: str, *, as_: Literal["arrow"]) -> pa.Table: ...

    def load(self, ref: str, *, as_: Literal["pandas", "arrow"] = "pandas") -> Any:
        """`ll.data.load`: version `ref` as one table (an input of the active run)."""
        load: Callable[..., Any] = data.load  # overloaded: called with either `as_`
        return self._client.call(load, ref, as_=as_)


class Models(_Area):
    """`loopline.models` through a client."""

    log_model = _Through(models.log_model)
    load = _Through(models.load)
    load_version = _Through(models.load_version)
    export = _Through(models.export)
    model_lineage = _Through(models.model_lineage)
    recorded_trust = _Through(models.recorded_trust)
    register_package = _Through(models.register_package)


class Registry(_Area):
    """`loopline.registry` through a client."""

    aliases_of = _Through(registry.aliases_of)
    archive = _Through(registry.archive)
    audit_log = _Through(registry.audit_log)
    audit_page = _Through(registry.audit_page)
    delete_alias = _Through(registry.delete_alias)
    describe = _Through(registry.describe)
    describe_model = _Through(registry.describe_model)
    get_model = _Through(registry.get_model)
    list_models = _Through(registry.list_models)
    list_versions = _Through(registry.list_versions)
    resolve = _Through(registry.resolve)
    set_alias = _Through(registry.set_alias)
    set_status = _Through(registry.set_status)
    verify_audit_log = _Through(registry.verify_audit_log)


class Evaluation(_Area):
    """`loopline.evaluation` through a client."""

    evaluate = _Through(evaluation.evaluate)
    latest_evaluation = _Through(evaluation.latest_evaluation)
    list_evaluations = _Through(evaluation.list_evaluations)


class Cards(_Area):
    """`loopline.cards` through a client."""

    build_card = _Through(cards.build_card)
    render_card = _Through(cards.render_card)
    store_card = _Through(cards.store_card)
    stored_card = _Through(cards.stored_card)


class Promotion(_Area):
    """`loopline.promotion` through a client."""

    approve = _Through(promotion.approve)
    check_gates = _Through(promotion.check_gates)
    list_approvals = _Through(promotion.list_approvals)
    list_gate_checks = _Through(promotion.list_gate_checks)
    promote = _Through(promotion.promote)


class Deployments(_Area):
    """`loopline.deployments` through a client."""

    create_deployment = _Through(deployments.create_deployment)
    deployment_history = _Through(deployments.deployment_history)
    deployments_serving = _Through(deployments.deployments_serving)
    get_deployment = _Through(deployments.get_deployment)
    list_deployments = _Through(deployments.list_deployments)
    promote_deployment = _Through(deployments.promote_deployment)
    rollback_deployment = _Through(deployments.rollback_deployment)
    update_deployment = _Through(deployments.update_deployment)


class Monitoring(_Area):
    """`loopline.monitoring` and the closed loop (`loopline.loop`) through a client."""

    run = _Through(monitoring.run)
    drift = _Through(monitoring.drift)
    list_reports = _Through(monitoring.list_reports)
    load_report = _Through(monitoring.load_report)
    watch_once = _Through(watch_once)
    run_loop = _Through(retrain.run_loop)
    judge_canaries = _Through(canary.judge_canaries)
    show_loop = _Through(canary.show_loop)
    list_loops = _Through(canary.list_loops)
