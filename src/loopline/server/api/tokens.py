"""API tokens over HTTP, for admins: list, create (the token is in this answer only),
show and revoke. The same operations as `loopline tokens`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.store.tokens import check_token_id, parse_lifetime

router = APIRouter(tags=["tokens"])


class NewToken(BaseModel):
    """A token to create: for `user`, with `role`, expiring after `expires` (e.g. 90d)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user: str = Field(max_length=128)
    role: str = Field(max_length=16)
    expires: str | None = Field(default=None, max_length=16)


@router.get("/tokens")
def list_tokens(request: Request, _: Caller = requires(Role.ADMIN)) -> dict[str, Any]:
    """Every token's record (never the token or its hash), oldest first."""
    tokens = stores_of(request).metadata.tokens.list_tokens()
    return {"tokens": [token.to_dict() for token in tokens]}


@router.post("/tokens", status_code=201)
def create_token(
    body: NewToken, request: Request, caller: Caller = requires(Role.ADMIN)
) -> dict[str, Any]:
    """A new token; `token` is shown in this answer only."""
    lifetime = None if body.expires is None else parse_lifetime(body.expires)
    record, token = stores_of(request).metadata.tokens.create(
        body.user, body.role, created_by=caller.user, lifetime=lifetime
    )
    return {"token": token, **record.to_dict()}


@router.get("/tokens/{token_id}")
def get_token(token_id: str, request: Request, _: Caller = requires(Role.ADMIN)) -> dict[str, Any]:
    """One token's record."""
    return stores_of(request).metadata.tokens.get(check_token_id(token_id)).to_dict()


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: str, request: Request, caller: Caller = requires(Role.ADMIN)
) -> dict[str, Any]:
    """Revoke a token; servers refuse it within a few seconds (their cache)."""
    tokens = stores_of(request).metadata.tokens
    return tokens.revoke(check_token_id(token_id), actor=caller.user).to_dict()
