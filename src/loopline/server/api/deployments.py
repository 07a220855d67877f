"""Deployments and their revisions, and the heartbeats of the servers that serve them.

Changes to a deployment (create, update, promote, rollback: an update names its
action) need the deployer role and are recorded under the caller; a heartbeat is
written by a serving process, which needs the writer role.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.responses import Response

from loopline.errors import InvalidInput, MalformedRequest
from loopline.server._answers import answer, body_as
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.store.deployments import MAX_HISTORY, check_deployment_name
from loopline.store.remote._codec import decode
from loopline.store.servers import ServedState, ServerIdentity

router = APIRouter(tags=["deployments"])

# a server id is the heartbeat writer's uuid4 hex; any opaque id of this shape is kept
SERVER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_NAMES = 1000
MAX_JSON_DEPTH = 32


class NewDeployment(BaseModel):
    """A deployment to create: its name and first configuration."""

    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    config: dict[str, Any]
    actor: StrictStr | None = None
    reason: StrictStr | None = None


class DeploymentChange(BaseModel):
    """The next configuration of a deployment; `action` says what made it (update,
    promote, rollback); with `expected_revision`, refused if another writer came first."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any]
    action: StrictStr
    actor: StrictStr | None = None
    reason: StrictStr | None = None
    expected_revision: StrictInt | None = None


class Prune(BaseModel):
    """Heartbeats not renewed for this many seconds are deleted."""

    model_config = ConfigDict(extra="forbid")
    older_than_seconds: float = Field(ge=0, allow_inf_nan=False)


def deployment_name(name: str) -> str:
    """A deployment name from a path or a query (the store's rule, whole)."""
    return check_deployment_name(name)


def check_json(value: Any, where: str, depth: int = 0) -> Any:
    """Refuse what the stores cannot keep as JSON: NaN or infinite numbers, deep nesting."""
    if depth > MAX_JSON_DEPTH:
        raise MalformedRequest(f"{where} is nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where} holds {value!r}; JSON has no such number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_json(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]", depth + 1)
    return value


@router.get("/deployments")
def list_deployments(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Every deployment, by name."""
    return answer(stores_of(request).metadata.deployments.all())


@router.post("/deployments", status_code=201)
def create_deployment(
    request: Request, body: NewDeployment, caller: Caller = requires(Role.DEPLOYER)
) -> Response:
    """A new deployment at revision 1 (409 if the name is taken)."""
    created = stores_of(request).metadata.deployments.create(
        deployment_name(body.name),
        check_json(body.config, "config"),
        actor=caller.acting_as(body.actor),
        reason=body.reason,
    )
    return answer(created, 201)


@router.get("/deployments/{name}")
def get_deployment(name: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """A deployment's current revision and configuration."""
    return answer(stores_of(request).metadata.deployments.get(deployment_name(name)))


@router.patch("/deployments/{name}")
def change_deployment(
    name: str, request: Request, body: DeploymentChange, caller: Caller = requires(Role.DEPLOYER)
) -> Response:
    """Make `config` the deployment's next revision (update, promote, rollback)."""
    changed = stores_of(request).metadata.deployments.update(
        deployment_name(name),
        check_json(body.config, "config"),
        action=_action(body.action),
        actor=caller.acting_as(body.actor),
        reason=body.reason,
        expected_revision=body.expected_revision,
    )
    return answer(changed)


@router.get("/deployments/{name}/revisions")
def deployment_history(
    name: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = MAX_HISTORY,
    caller: Caller = requires(Role.READER),
) -> Response:
    """The deployment's revisions, newest first."""
    store = stores_of(request).metadata.deployments
    return answer(store.history(deployment_name(name), limit=limit))


@router.get("/deployment-revisions")
def current_revisions(
    request: Request,
    name: Annotated[list[str], Query(max_length=MAX_NAMES)],
    caller: Caller = requires(Role.READER),
) -> Response:
    """The current revision of each named deployment that exists (a server polls it)."""
    names = [deployment_name(each) for each in name]
    return answer(stores_of(request).metadata.deployments.revisions(names))


# -- the servers' heartbeats ----------------------------------------------------------


@router.get("/servers/heartbeats")
def heartbeats(
    request: Request,
    deployment: Annotated[list[str] | None, Query(max_length=MAX_NAMES)] = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """The heartbeats of the named deployments (all without `deployment`)."""
    names = None if deployment is None else [deployment_name(each) for each in deployment]
    return answer(stores_of(request).metadata.servers.of_deployments(names))


@router.put("/servers/{server_id}/heartbeats")
async def beat(
    server_id: str, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Replace the server's heartbeats by what it serves now; the time it was seen."""
    body = await body_as(request, dict[str, Any])
    if not isinstance(body, dict) or set(body) != {"server", "served"}:
        raise MalformedRequest("a heartbeat is an object of 'server' and 'served'")
    server: ServerIdentity = _decoded(ServerIdentity, body["server"], "server")
    served: list[ServedState] = _decoded(list[ServedState], body["served"], "served")
    if server.server_id != _server_id(server_id):
        raise InvalidInput(f"the heartbeat is of server {server.server_id!r}, not {server_id!r}")
    _check_identity(server)
    for state in served:
        deployment_name(state.deployment)
        check_json(state.models, "served.models")
    seen = stores_of(request).metadata.servers.beat(server, served)
    return answer({"last_seen": seen})


@router.delete("/servers/{server_id}", status_code=204)
def remove_server(
    server_id: str, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Forget a server that stopped cleanly."""
    stores_of(request).metadata.servers.remove(_server_id(server_id))
    return Response(status_code=204)


@router.post("/servers/prune")
def prune_servers(
    request: Request, body: Prune, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Delete heartbeats not renewed for `older_than_seconds`; how many."""
    try:
        older_than = timedelta(seconds=body.older_than_seconds)
    except OverflowError:
        raise InvalidInput("older_than_seconds is out of range") from None
    return answer({"pruned": stores_of(request).metadata.servers.prune(older_than)})


def _decoded(hint: Any, data: Any, where: str) -> Any:
    try:
        return decode(hint, data)
    except MalformedRequest as exc:
        raise MalformedRequest(f"{where}: {exc}") from None


def _server_id(server_id: str) -> str:
    if not SERVER_ID.fullmatch(server_id):
        raise InvalidInput(f"invalid server id {server_id[:80]!r}")
    return server_id


def _check_identity(server: ServerIdentity) -> None:
    interval = server.interval_seconds
    if not math.isfinite(interval) or interval <= 0:
        raise InvalidInput(f"interval_seconds must be a positive number, got {interval!r}")


def _action(action: str) -> str:
    if not re.fullmatch(r"[a-z][a-z_]{0,31}", action):
        raise InvalidInput(f"invalid deployment action {action[:40]!r}")
    return action
