"""Deployments in the metadata database: the current configuration and every revision.

A deployment's configuration is an opaque JSON object here (serving.deployments gives it
meaning). Each change writes the new configuration as the next revision, in the same
transaction as its audit event; a writer names the revision it changed
(`expected_revision`), so two concurrent changes cannot silently overwrite each other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select, update

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.store._schema import deployment_revisions, deployments
from loopline.store.audit import record_event
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

# A deployment name is one URL path segment and one folder name (the log spool).
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_HISTORY = 1000


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as stored: its current revision and configuration."""

    name: str
    revision: int
    config: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeploymentRevision:
    """One configuration a deployment had: what changed it, who, when and why."""

    revision: int
    action: str
    config: dict[str, Any]
    actor: str
    reason: str | None
    created_at: datetime


def check_deployment_name(name: object) -> str:
    """A deployment name is 1-128 letters, digits, '_', '-', '.', starting alphanumeric."""
    if not isinstance(name, str) or not DEPLOYMENT_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid deployment name {name!r}",
            hint="use 1-128 letters, digits, '_', '-' and '.', starting with a letter or digit",
        )
    return name


class DeploymentStore:
    """SQL operations on deployments; reached as `MetadataStore.deployments`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, name: str, config: dict[str, Any], *, actor: str, reason: str | None = None
    ) -> DeploymentRecord:
        """A new deployment at revision 1; Conflict if the name is taken."""
        check_deployment_name(name)
        if self._exists(name):
            raise _taken(name)
        now = datetime.now(UTC)
        deployment_id = new_id()
        try:
            with self._db.write("create deployment") as conn:
                conn.execute(
                    deployments.insert().values(
                        id=deployment_id,
                        name=name,
                        revision=1,
                        config_json=_dump(config),
                        created_by=actor,
                        created_at=now,
                        updated_at=now,
                    )
                )
                self._add_revision(conn, deployment_id, 1, "create", config, actor, reason, now)
                record_event(
                    conn,
                    actor=actor,
                    action="deployment.create",
                    object_type="deployment",
                    object_id=name,
                    after=config,
                    reason=reason,
                )
        except Conflict:
            raise _taken(name) from None
        return self.get(name)

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
        """Make `config` the next revision. With `expected_revision`, Conflict if another
        writer changed the deployment since that revision was read."""
        check_deployment_name(name)
        now = datetime.now(UTC)
        with self._db.write("update deployment") as conn:
            row = conn.execute(
                select(deployments.c.id, deployments.c.revision, deployments.c.config_json)
                .where(deployments.c.name == name)
                .with_for_update()
            ).first()
            if row is None:
                raise _no_deployment(name)
            if expected_revision is not None and row.revision != expected_revision:
                raise Conflict(
                    f"deployment '{name}' changed meanwhile (revision {row.revision}, "
                    f"expected {expected_revision})",
                    hint=f"`loopline deploy show {name}` shows the current configuration",
                )
            revision = int(row.revision) + 1
            conn.execute(
                update(deployments)
                .where(deployments.c.id == row.id)
                .values(revision=revision, config_json=_dump(config), updated_at=now)
            )
            self._add_revision(conn, row.id, revision, action, config, actor, reason, now)
            record_event(
                conn,
                actor=actor,
                action=f"deployment.{action}",
                object_type="deployment",
                object_id=name,
                before=json.loads(row.config_json),
                after=config,
                reason=reason,
            )
        return self.get(name)

    def get(self, name: str) -> DeploymentRecord:
        check_deployment_name(name)
        with self._db.read() as conn:
            row = conn.execute(select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            raise _no_deployment(name)
        return _record(row)

    def all(self) -> list[DeploymentRecord]:
        """Every deployment, by name."""
        with self._db.read() as conn:
            rows = conn.execute(select(deployments).order_by(deployments.c.name)).all()
        return [_record(row) for row in rows]

    def revisions(self, names: list[str]) -> dict[str, int]:
        """The current revision of each named deployment that exists (one cheap query: a
        running server polls it to notice changes)."""
        if not names:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(
                select(deployments.c.name, deployments.c.revision).where(
                    deployments.c.name.in_(names)
                )
            ).all()
        return {str(row.name): int(row.revision) for row in rows}

    def history(self, name: str, *, limit: int = MAX_HISTORY) -> list[DeploymentRevision]:
        """The deployment's revisions, newest first."""
        check_deployment_name(name)
        with self._db.read() as conn:
            found = conn.execute(select(deployments.c.id).where(deployments.c.name == name))
            row = found.first()
            if row is None:
                raise _no_deployment(name)
            rows = conn.execute(
                select(deployment_revisions)
                .where(deployment_revisions.c.deployment_id == row.id)
                .order_by(deployment_revisions.c.revision.desc())
                .limit(limit)
            ).all()
        return [
            DeploymentRevision(
                revision=int(r.revision),
                action=str(r.action),
                config=json.loads(r.config_json),
                actor=str(r.actor),
                reason=r.reason,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def _exists(self, name: str) -> bool:
        with self._db.read() as conn:
            found = conn.execute(select(deployments.c.id).where(deployments.c.name == name))
            return found.first() is not None

    @staticmethod
    def _add_revision(
        conn: Any,
        deployment_id: str,
        revision: int,
        action: str,
        config: dict[str, Any],
        actor: str,
        reason: str | None,
        now: datetime,
    ) -> None:
        conn.execute(
            deployment_revisions.insert().values(
                deployment_id=deployment_id,
                revision=revision,
                action=action,
                config_json=_dump(config),
                actor=actor,
                reason=reason,
                created_at=now,
            )
        )


def _record(row: Row[Any]) -> DeploymentRecord:
    return DeploymentRecord(
        name=str(row.name),
        revision=int(row.revision),
        config=json.loads(row.config_json),
        created_by=str(row.created_by),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


def _no_deployment(name: str) -> NotFound:
    return NotFound(f"no deployment named '{name}'", hint="`loopline deploy ls` lists them")


def _taken(name: str) -> Conflict:
    return Conflict(
        f"a deployment named '{name}' already exists",
        hint=f"change it with `loopline deploy update {name}`",
    )
