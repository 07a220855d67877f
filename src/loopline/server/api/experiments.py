"""Experiments: list, get-or-create, get by name or id."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput, NotFound
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.store._names import check_experiment_name, check_id

router = APIRouter(tags=["experiments"])


class ExperimentBody(BaseModel):
    """The experiment to find, or create when it does not exist."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str


@router.get("/experiments")
def list_experiments(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every experiment with its number of (non-deleted) runs, newest first."""
    return answer(stores_of(request).metadata.runs.list_experiments())


@router.post("/experiments")
def get_or_create_experiment(
    body: ExperimentBody, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """The experiment called `name`, created on first use (repeating it changes nothing)."""
    return answer(stores_of(request).metadata.runs.get_or_create_experiment(body.name))


@router.get("/experiments/{name_or_id}")
def get_experiment(
    name_or_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """One experiment, by name or id."""
    try:
        check_experiment_name(name_or_id)
    except InvalidInput:
        try:
            check_id("experiment", name_or_id)
        except InvalidInput:  # no stored experiment can be called that
            raise NotFound(
                f"no experiment named {name_or_id!r}",
                hint="`loopline experiments ls` lists them",
            ) from None
    return answer(stores_of(request).metadata.runs.get_experiment(name_or_id))


@router.get("/experiments/{experiment_id}/run-keys")
def run_keys(
    experiment_id: str,
    request: Request,
    newest: int | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """The param, metric and tag keys the experiment's runs hold (a table's columns); of
    its `newest` runs only when given."""
    runs = stores_of(request).metadata.runs
    return answer(runs.run_keys(check_id("experiment", experiment_id), newest=newest))
