"""Deployments and their revisions through a platform server (`DeploymentStore`'s
methods, same arguments, answers and errors)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from loopline.store.deployments import (
    MAX_HISTORY,
    DeploymentRecord,
    DeploymentRevision,
    check_deployment_name,
)
from loopline.store.remote._codec import decode
from loopline.store.remote._session import RemoteSession


def deployment_path(name: str) -> str:
    """/deployments/NAME, the name checked first (as the store does) and quoted."""
    return f"/deployments/{quote(check_deployment_name(name), safe='')}"


class RemoteDeploymentStore:
    """`MetadataStore.deployments` of a remote store."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def create(
        self, name: str, config: dict[str, Any], *, actor: str, reason: str | None = None
    ) -> DeploymentRecord:
        """A new deployment at revision 1; Conflict if the name is taken (not retried: a
        repeat would be refused as taken)."""
        check_deployment_name(name)
        body = {"name": name, "config": config, "actor": actor, "reason": reason}
        answer = self._session.call("POST", "/deployments", body=body)
        return decode(DeploymentRecord, answer)  # type: ignore[no-any-return]

    def update(
        self,
        name: str,
        config: dict[str, Any],
        *,
        action: str,
        actor: str,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> DeploymentRecord:
        """Make `config` the next revision (not retried: a repeat would add a revision)."""
        body = {
            "config": config,
            "action": action,
            "actor": actor,
            "reason": reason,
            "expected_revision": expected_revision,
        }
        answer = self._session.call("PATCH", deployment_path(name), body=body, idempotent=False)
        return decode(DeploymentRecord, answer)  # type: ignore[no-any-return]

    def get(self, name: str) -> DeploymentRecord:
        answer = self._session.call("GET", deployment_path(name))
        return decode(DeploymentRecord, answer)  # type: ignore[no-any-return]

    def all(self) -> list[DeploymentRecord]:
        """Every deployment, by name."""
        return decode(list[DeploymentRecord], self._session.call("GET", "/deployments"))  # type: ignore[no-any-return]

    def revisions(self, names: list[str]) -> dict[str, int]:
        """The current revision of each named deployment that exists."""
        if not names:
            return {}
        answer = self._session.call("GET", "/deployment-revisions", params={"name": list(names)})
        return decode(dict[str, int], answer)  # type: ignore[no-any-return]

    def history(self, name: str, *, limit: int = MAX_HISTORY) -> list[DeploymentRevision]:
        """The deployment's revisions, newest first."""
        path = deployment_path(name) + "/revisions"
        answer = self._session.call("GET", path, params={"limit": limit})
        return decode(list[DeploymentRevision], answer)  # type: ignore[no-any-return]
