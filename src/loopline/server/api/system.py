"""Health and identity: what a client asks before anything else."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loopline._version import __version__
from loopline.server._permissions import Caller, Role, public, requires

router = APIRouter(tags=["system"])


@router.get("/health", dependencies=[public()])
def health() -> dict[str, Any]:
    """The server answers; no credentials needed."""
    return {"status": "ok", "version": __version__}


@router.get("/whoami")
def whoami(caller: Caller = requires(Role.READER)) -> dict[str, Any]:
    """The authenticated caller and their role."""
    return {"user": caller.user, "role": caller.role.name.lower()}
