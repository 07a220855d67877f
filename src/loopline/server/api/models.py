"""The model registry over HTTP: registered models, versions, aliases and status, the
routes the remote `ModelStore` (store/remote/models.py) calls.

Status and alias changes run the registry's rules (`loopline.registry.rules`) here, in
the server's transaction with the model's row locked, exactly as a local change would:
the client cannot hold a database transaction open across HTTP. Reads need READER;
registering and describing versions WRITER; aliases and status DEPLOYER. Every change is
audited under the authenticated user (`caller.acting_as`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from loopline.registry import rules
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api._bodies import Body, checked, checked_id
from loopline.server.app import stores_of
from loopline.store import ModelStore, check_alias, check_model_name, model_status

router = APIRouter(tags=["models"])


class NewModelVersion(Body):
    flavor: str
    package_hash: str
    size_bytes: int
    signature: dict[str, Any]
    manifest: dict[str, Any]
    created_by: str | None = None
    run_id: str | None = None
    source_version_id: str | None = None
    extra: dict[str, Any] | None = None
    description: str | None = None
    tags: dict[str, str] | None = None


class Description(Body):
    actor: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None


class StatusChange(Body):
    status: str
    actor: str | None = None
    reason: str | None = None


class AliasMove(Body):
    version: int
    actor: str | None = None
    reason: str | None = None


class Card(Body):
    card_hash: str


def _models(request: Request) -> ModelStore:
    return stores_of(request).metadata.models


def _name(name: str) -> str:
    return checked(check_model_name, name)


# -- models ------------------------------------------------------------------------------


@router.get("/models")
def list_models(request: Request, _: Caller = requires(Role.READER)) -> Response:
    return answer(_models(request).list_models())


@router.get("/models/{name}")
def get_model(request: Request, name: str, _: Caller = requires(Role.READER)) -> Response:
    return answer(_models(request).get_model(_name(name)))


@router.patch("/models/{name}")
def update_model(
    request: Request, name: str, body: Description, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Set the model's description and/or merge tags into its tags."""
    updated = _models(request).update_model(
        _name(name),
        actor=caller.acting_as(body.actor),
        description=body.description,
        tags=body.tags,
    )
    return answer(updated)


# -- versions ----------------------------------------------------------------------------


@router.post("/models/{name}/versions")
def create_version(
    request: Request, name: str, body: NewModelVersion, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Register the next version of the model (created on first use)."""
    created = _models(request).create_version(
        _name(name),
        flavor=body.flavor,
        package_hash=body.package_hash,
        size_bytes=body.size_bytes,
        signature=body.signature,
        manifest=body.manifest,
        created_by=caller.acting_as(body.created_by),
        run_id=body.run_id,
        source_version_id=body.source_version_id,
        extra=body.extra,
        description=body.description,
        tags=body.tags,
    )
    return answer(created, 201)


@router.get("/models/{name}/versions")
def list_versions(request: Request, name: str, _: Caller = requires(Role.READER)) -> Response:
    """Every version of the model, newest first."""
    return answer(_models(request).list_versions(_name(name)))


@router.get("/models/{name}/versions/latest")
def latest_version(request: Request, name: str, _: Caller = requires(Role.READER)) -> Response:
    return answer(_models(request).latest_version(_name(name)))


@router.get("/models/{name}/versions/{version}")
def get_version(
    request: Request, name: str, version: int, _: Caller = requires(Role.READER)
) -> Response:
    return answer(_models(request).get_version(_name(name), version))


@router.patch("/models/{name}/versions/{version}")
def update_version(
    request: Request,
    name: str,
    version: int,
    body: Description,
    caller: Caller = requires(Role.WRITER),
) -> Response:
    """Set a version's description and/or merge tags into its tags."""
    updated = _models(request).update_version(
        _name(name),
        version,
        actor=caller.acting_as(body.actor),
        description=body.description,
        tags=body.tags,
    )
    return answer(updated)


@router.put("/models/{name}/versions/{version}/status")
def change_status(
    request: Request,
    name: str,
    version: int,
    body: StatusChange,
    caller: Caller = requires(Role.DEPLOYER),
) -> Response:
    """Move the version's status forward under the registry's rules: {"before", "version"}."""
    before, updated = rules.change_status(
        _models(request),
        _name(name),
        version,
        model_status(body.status),
        actor=caller.acting_as(body.actor),
        reason=body.reason,
    )
    return answer({"before": before, "version": updated})


# -- aliases -----------------------------------------------------------------------------


@router.get("/models/{name}/aliases/{alias}")
def version_for_alias(
    request: Request, name: str, alias: str, _: Caller = requires(Role.READER)
) -> Response:
    """The version `name@alias` names."""
    found = _models(request).version_for_alias(_name(name), checked(check_alias, alias))
    return answer(found)


@router.put("/models/{name}/aliases/{alias}")
def move_alias(
    request: Request,
    name: str,
    alias: str,
    body: AliasMove,
    caller: Caller = requires(Role.DEPLOYER),
) -> Response:
    """Point `name@alias` at a version: {"before": the version it named, or null}."""
    before = rules.move_alias(
        _models(request),
        _name(name),
        checked(check_alias, alias),
        body.version,
        actor=caller.acting_as(body.actor),
        reason=body.reason,
    )
    return answer({"before": before})


@router.delete("/models/{name}/aliases/{alias}")
def remove_alias(
    request: Request,
    name: str,
    alias: str,
    actor: str | None = Query(default=None, max_length=256),
    reason: str | None = Query(default=None, max_length=4096),
    caller: Caller = requires(Role.DEPLOYER),
) -> Response:
    """Remove `name@alias`: {"version": the version it named}."""
    number = rules.remove_alias(
        _models(request),
        _name(name),
        checked(check_alias, alias),
        actor=caller.acting_as(actor),
        reason=reason,
    )
    return answer({"version": number})


# -- versions by id ----------------------------------------------------------------------


@router.get("/model-versions")
def versions_for_run(
    request: Request, run_id: str = Query(max_length=64), _: Caller = requires(Role.READER)
) -> Response:
    """The versions logged by run `run_id`."""
    return answer(_models(request).versions_for_run(checked_id(run_id, "run id")))


@router.get("/model-versions/{version_id}")
def get_version_by_id(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    return answer(_models(request).get_version_by_id(checked_id(version_id, "version id")))


@router.get("/model-versions/{version_id}/derived")
def versions_from_source(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    """Versions derived from this one (its exports), newest first."""
    found = _models(request).versions_from_source(checked_id(version_id, "version id"))
    return answer(found)


@router.get("/model-versions/{version_id}/aliases")
def aliases_of(request: Request, version_id: str, _: Caller = requires(Role.READER)) -> Response:
    return answer(_models(request).aliases_of(checked_id(version_id, "version id")))


@router.put("/model-versions/{version_id}/card")
def set_card(
    request: Request, version_id: str, body: Card, _: Caller = requires(Role.WRITER)
) -> Response:
    """Point the version at its latest generated model card (derived data, not audited)."""
    models = _models(request)
    models.get_version_by_id(checked_id(version_id, "version id"))  # 404 for an unknown one
    models.set_card(version_id, body.card_hash)
    return Response(status_code=204)
