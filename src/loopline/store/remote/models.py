"""`ModelStore` over HTTP: the same methods, answered by the server's /api/v1/models and
/api/v1/model-versions routes (server/api/models.py).

`ModelStore.change` hands out a database transaction, which cannot be held open across
HTTP: here it raises, and the registry's rules (`loopline.registry.rules`) send the
whole change instead (`change_status`, `move_alias`, `remove_alias`), which the server
runs under the same rules in its own transaction. Registering a version is not retried
(a repeat would register another version); moving an alias is (a repeat changes
nothing but the audit trail).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

from loopline.errors import LooplineError
from loopline.store.model_records import (
    ModelStatus,
    ModelVersion,
    RegisteredModel,
    check_alias,
    check_model_name,
)
from loopline.store.remote._codec import decode
from loopline.store.remote._paths import segment

if TYPE_CHECKING:
    from loopline.store.remote._session import RemoteSession


class RemoteModelStore:
    """The model registry through a loopline server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    # -- versions ------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        *,
        flavor: str,
        package_hash: str,
        size_bytes: int,
        signature: dict[str, Any],
        manifest: dict[str, Any],
        created_by: str,
        run_id: str | None = None,
        source_version_id: str | None = None,
        extra: dict[str, Any] | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Register the next version of `name` (the model is created on first use)."""
        answer = self._session.call(
            "POST",
            f"{_model(name)}/versions",
            body={
                "flavor": flavor,
                "package_hash": package_hash,
                "size_bytes": size_bytes,
                "signature": _stored(signature),
                "manifest": _stored(manifest),
                "created_by": created_by,
                "run_id": run_id,
                "source_version_id": source_version_id,
                "extra": None if extra is None else _stored(extra),
                "description": description,
                "tags": tags,
            },
        )
        return _version(answer)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return _version(self._session.call("GET", f"{_model(name)}/versions/{int(version)}"))

    def get_version_by_id(self, version_id: str) -> ModelVersion:
        return _version(self._session.call("GET", _by_id(version_id)))

    def latest_version(self, name: str) -> ModelVersion:
        return _version(self._session.call("GET", f"{_model(name)}/versions/latest"))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, newest first."""
        return _versions(self._session.call("GET", f"{_model(name)}/versions"))

    def versions_from_source(self, version_id: str) -> list[ModelVersion]:
        """Versions derived from `version_id` (e.g. its ONNX exports), newest first."""
        return _versions(self._session.call("GET", f"{_by_id(version_id)}/derived"))

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        answer = self._session.call("GET", "/model-versions", params={"run_id": run_id})
        return _versions(answer)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Change a version's description or tags (its package never changes)."""
        answer = self._session.call(
            "PATCH",
            f"{_model(name)}/versions/{int(version)}",
            body={"actor": actor, "description": description, "tags": tags},
        )
        return _version(answer)

    def set_card(self, version_id: str, card_hash: str) -> None:
        """Point a version at its latest generated model card."""
        self._session.call("PUT", f"{_by_id(version_id)}/card", body={"card_hash": card_hash})

    # -- changes under the registry's rules -----------------------------------------------

    def change(self, name: str, what: str) -> NoReturn:
        """Not over HTTP: a change's transaction lives on the server (see the docstring)."""
        raise LooplineError(
            f"cannot {what} through a transaction over HTTP",
            hint="the registry's rules (loopline.registry.rules) send the change to the server",
        )

    def change_status(
        self, name: str, version: int, status: ModelStatus, *, actor: str, reason: str | None
    ) -> tuple[ModelStatus, ModelVersion]:
        """`rules.change_status`, run by the server: (the status before, the version)."""
        # not retried: a repeat of a move that was applied answers "already <status>"
        answer = self._session.call(
            "PUT",
            f"{_model(name)}/versions/{int(version)}/status",
            body={"status": ModelStatus(status).value, "actor": actor, "reason": reason},
            idempotent=False,
        )
        return decode(ModelStatus, answer["before"]), _version(answer["version"])

    def move_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str | None = None
    ) -> int | None:
        """`rules.move_alias`, run by the server: the version the alias named before."""
        answer = self._session.call(
            "PUT",
            _alias(name, alias),
            body={"version": int(version), "actor": actor, "reason": reason},
        )
        before: int | None = decode(int | None, answer["before"])
        return before

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> int:
        """`rules.remove_alias`, run by the server: the version the alias named."""
        params = {"actor": actor} if reason is None else {"actor": actor, "reason": reason}
        # not retried: a repeat of a removal that was applied answers NotFound
        answer = self._session.call("DELETE", _alias(name, alias), params=params, idempotent=False)
        number: int = decode(int, answer["version"])
        return number

    # -- aliases -------------------------------------------------------------------------

    def version_for_alias(self, name: str, alias: str) -> ModelVersion:
        return _version(self._session.call("GET", _alias(name, alias)))

    def aliases_of(self, version_id: str) -> list[str]:
        aliases: list[str] = decode(
            list[str], self._session.call("GET", f"{_by_id(version_id)}/aliases")
        )
        return aliases

    # -- models --------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        return _registered(self._session.call("GET", _model(name)))

    def list_models(self) -> list[RegisteredModel]:
        models: list[RegisteredModel] = decode(
            list[RegisteredModel], self._session.call("GET", "/models")
        )
        return models

    def update_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> RegisteredModel:
        answer = self._session.call(
            "PATCH",
            _model(name),
            body={"actor": actor, "description": description, "tags": tags},
        )
        return _registered(answer)


def _model(name: str) -> str:
    return f"/models/{segment(check_model_name(name))}"


def _alias(name: str, alias: str) -> str:
    return f"{_model(name)}/aliases/{segment(check_alias(alias))}"


def _by_id(version_id: str) -> str:
    return f"/model-versions/{segment(version_id)}"


def _stored(value: dict[str, Any]) -> Any:
    """`value` as the store keeps it (JSON, str() of what JSON has no form for; a NaN
    raises ValueError, as the local store does)."""
    return json.loads(json.dumps(value, sort_keys=True, allow_nan=False, default=str))


def _version(data: Any) -> ModelVersion:
    version: ModelVersion = decode(ModelVersion, data)
    return version


def _versions(data: Any) -> list[ModelVersion]:
    versions: list[ModelVersion] = decode(list[ModelVersion], data)
    return versions


def _registered(data: Any) -> RegisteredModel:
    model: RegisteredModel = decode(RegisteredModel, data)
    return model
