"""Registered models, their immutable versions, aliases and status, in the metadata database.

A version's files live in the artifact store; the row records which package (by hash)
the version number names, with its flavor, signature, source run and who made it. Every
change (new version, alias move, status change, approval) writes an audit event in the
same transaction, so the log and the state can never disagree. Which status and alias
moves are allowed is the registry's to say (`loopline.registry.rules`); this module
offers the transaction they run in (`ModelStore.change`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, select, update

from loopline.errors import Conflict, NotFound
from loopline.store._schema import model_aliases, model_versions, registered_models
from loopline.store.audit import record_event
from loopline.store.model_records import (
    ModelStatus,
    ModelVersion,
    RegisteredModel,
    check_model_name,
    check_model_tags,
)
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

_ATTEMPTS = 5  # concurrent registrations race for the next version number


class ModelStore:
    """SQL operations on the model registry; reached as `MetadataStore.models`."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        check_model_name(name)
        check_model_tags(tags)
        model_id = self._get_or_create(name, created_by)
        for _attempt in range(_ATTEMPTS):
            try:
                with self._db.write("register model version") as conn:
                    _lock_model(conn, name)  # writers of one model take turns
                    latest = conn.execute(
                        select(func.max(model_versions.c.version)).where(
                            model_versions.c.model_id == model_id
                        )
                    ).scalar()
                    number = (latest or 0) + 1
                    now = datetime.now(UTC)
                    conn.execute(
                        model_versions.insert().values(
                            id=new_id(),
                            model_id=model_id,
                            version=number,
                            status=ModelStatus.CANDIDATE.value,
                            flavor=flavor,
                            package_hash=package_hash,
                            size_bytes=size_bytes,
                            signature_json=_dump(signature),
                            manifest_json=_dump(manifest),
                            run_id=run_id,
                            source_version_id=source_version_id,
                            extra_json=_dump(extra or {}),
                            description=description,
                            tags_json=_dump(tags or {}),
                            created_by=created_by,
                            created_at=now,
                        )
                    )
                    conn.execute(
                        update(registered_models)
                        .where(registered_models.c.id == model_id)
                        .values(updated_at=now)
                    )
                    record_event(
                        conn,
                        actor=created_by,
                        action="model_version.create",
                        object_type="model_version",
                        object_id=f"{name}/{number}",
                        after={"flavor": flavor, "package": package_hash, "run_id": run_id},
                    )
                    if extra and extra.get("trusted"):  # who trusted which types, and when
                        record_event(
                            conn,
                            actor=created_by,
                            action="model_version.trust",
                            object_type="model_version",
                            object_id=f"{name}/{number}",
                            after={"trusted": list(extra["trusted"])},
                            reason="types trusted when the version was logged",
                        )
                return self.get_version(name, number)
            except Conflict:
                continue  # another writer took this number first; try the next
        raise Conflict(f"could not register a version of {name!r}: too many concurrent writers")

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._db.read() as conn:
            row = conn.execute(
                self._versions(conn, name).where(model_versions.c.version == version)
            ).first()
        if row is None:
            raise self._no_version(name, f"no version {version}")
        return _version(row)

    def get_version_by_id(self, version_id: str) -> ModelVersion:
        with self._db.read() as conn:
            row = conn.execute(_joined().where(model_versions.c.id == version_id)).first()
        if row is None:
            raise NotFound(f"no model version with id {version_id!r}")
        return _version(row)

    def latest_version(self, name: str) -> ModelVersion:
        with self._db.read() as conn:
            row = conn.execute(
                self._versions(conn, name).order_by(model_versions.c.version.desc()).limit(1)
            ).first()
        if row is None:
            raise NotFound(f"model {name!r} has no versions")
        return _version(row)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, newest first."""
        with self._db.read() as conn:
            stmt = self._versions(conn, name).order_by(model_versions.c.version.desc())
            return [_version(row) for row in conn.execute(stmt)]

    def versions_from_source(self, version_id: str) -> list[ModelVersion]:
        """Versions derived from `version_id` (e.g. its ONNX exports), newest first."""
        stmt = (
            _joined()
            .where(model_versions.c.source_version_id == version_id)
            .order_by(model_versions.c.created_at.desc())
        )
        with self._db.read() as conn:
            return [_version(row) for row in conn.execute(stmt)]

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        stmt = _joined().where(model_versions.c.run_id == run_id)
        with self._db.read() as conn:
            return [_version(row) for row in conn.execute(stmt)]

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
        check_model_tags(tags)
        current = self.get_version(name, version)
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags_json"] = _dump({**current.tags, **tags})
        if values:
            with self._db.write("update model version") as conn:
                conn.execute(
                    update(model_versions).where(model_versions.c.id == current.id).values(**values)
                )
                record_event(
                    conn,
                    actor=actor,
                    action="model_version.update",
                    object_type="model_version",
                    object_id=current.ref,
                    before={"description": current.description, "tags": current.tags},
                    after={"description": description, "tags": tags},
                )
        return self.get_version(name, version)

    def set_card(self, version_id: str, card_hash: str) -> None:
        """Point a version at its latest generated model card (derived data, not audited)."""
        with self._db.write("store model card") as conn:
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == version_id)
                .values(card_hash=card_hash)
            )

    # -- changes under the registry's rules -----------------------------------------------

    @contextmanager
    def change(self, name: str, what: str) -> Iterator[ModelChange]:
        """One write transaction on model `name`, its row locked first: concurrent changes
        of one model take turns, so what a rule reads is still true when the change and
        its audit event commit (together, or not at all). `what` names the operation in
        errors; NotFound when there is no such model."""
        with self._db.write(what) as conn:
            yield ModelChange(conn, name, _lock_model(conn, name))

    # -- aliases -------------------------------------------------------------------------

    def version_for_alias(self, name: str, alias: str) -> ModelVersion:
        with self._db.read() as conn:
            model_id = self._model_id(conn, name)
            number = None if model_id is None else _alias_target(conn, model_id, alias)
        if number is None:
            known = ", ".join(sorted(self.get_model(name).aliases)) or "none"
            raise NotFound(f"model {name!r} has no alias {alias!r} (aliases: {known})")
        return self.get_version(name, number)

    def aliases_of(self, version_id: str) -> list[str]:
        stmt = select(model_aliases.c.alias).where(model_aliases.c.version_id == version_id)
        with self._db.read() as conn:
            return sorted(str(row.alias) for row in conn.execute(stmt))

    # -- models --------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        with self._db.read() as conn:
            row = conn.execute(
                select(registered_models).where(registered_models.c.name == name)
            ).first()
            if row is None:
                raise NotFound(
                    f"no model named {name!r}", hint="`loopline models ls` lists registered models"
                )
            return self._model(conn, row)

    def list_models(self) -> list[RegisteredModel]:
        with self._db.read() as conn:
            rows = conn.execute(select(registered_models).order_by(registered_models.c.name))
            return [self._model(conn, row) for row in rows]

    def update_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> RegisteredModel:
        check_model_tags(tags)
        current = self.get_model(name)
        values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags_json"] = _dump({**current.tags, **tags})
        with self._db.write("update model") as conn:
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == current.id)
                .values(**values)
            )
            record_event(
                conn,
                actor=actor,
                action="model.update",
                object_type="model",
                object_id=name,
                before={"description": current.description, "tags": current.tags},
                after={"description": description, "tags": tags},
            )
        return self.get_model(name)

    # -- plumbing ------------------------------------------------------------------------

    def _model(self, conn: Connection, row: Row[Any]) -> RegisteredModel:
        latest = conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.model_id == row.id)
        ).scalar()
        aliases = conn.execute(
            select(model_aliases.c.alias, model_versions.c.version)
            .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
            .where(model_aliases.c.model_id == row.id)
        )
        return RegisteredModel(
            id=row.id,
            name=row.name,
            description=row.description,
            tags=json.loads(row.tags_json),
            created_at=row.created_at,
            updated_at=row.updated_at,
            latest_version=latest,
            aliases={str(a.alias): int(a.version) for a in aliases},
        )

    def _get_or_create(self, name: str, actor: str) -> str:
        now = datetime.now(UTC)
        return self._db.get_or_create_named(
            registered_models,
            name,
            {"tags_json": "{}", "created_at": now, "updated_at": now},
            what="create model",
            on_insert=lambda conn: record_event(
                conn, actor=actor, action="model.create", object_type="model", object_id=name
            ),
        )

    def _model_id(self, conn: Connection, name: str) -> str | None:
        row = conn.execute(
            select(registered_models.c.id).where(registered_models.c.name == name)
        ).first()
        return None if row is None else str(row.id)

    def _versions(self, conn: Connection, name: str) -> Any:
        check_model_name(name)
        if self._model_id(conn, name) is None:
            raise NotFound(f"no model named {name!r}", hint="`loopline models ls` lists them")
        return _joined().where(registered_models.c.name == name)

    def _no_version(self, name: str, what: str) -> NotFound:
        versions = self.list_versions(name)
        latest = f"latest is {versions[0].version}" if versions else "it has no versions"
        return NotFound(f"model {name!r} has {what}; {latest}")


class ModelChange:
    """The primitives a registry rule uses inside `ModelStore.change`: read a version and
    an alias, move or remove an alias, set a status, and record the audit event."""

    def __init__(self, conn: Connection, name: str, model_id: str) -> None:
        self._conn = conn
        self.name = name
        self._model_id = model_id

    def version(self, number: int) -> VersionState:
        """The version's id and status now; NotFound when the model has no such version."""
        row = self._conn.execute(
            select(model_versions.c.id, model_versions.c.status).where(
                (model_versions.c.model_id == self._model_id) & (model_versions.c.version == number)
            )
        ).first()
        if row is None:
            raise NotFound(f"model {self.name!r} has no version {number}")
        return VersionState(id=str(row.id), version=number, status=ModelStatus(row.status))

    def alias(self, alias: str) -> int | None:
        """The version number `alias` names now, or None."""
        return _alias_target(self._conn, self._model_id, alias)

    def point_alias(self, alias: str, target: VersionState, *, exists: bool) -> None:
        """Point `alias` at `target`; `exists` says whether the alias is there to move."""
        now = datetime.now(UTC)
        if exists:
            self._conn.execute(
                update(model_aliases)
                .where(self._alias_row(alias))
                .values(version_id=target.id, updated_at=now)
            )
        else:
            self._conn.execute(
                model_aliases.insert().values(
                    model_id=self._model_id, alias=alias, version_id=target.id, updated_at=now
                )
            )

    def remove_alias(self, alias: str) -> None:
        self._conn.execute(model_aliases.delete().where(self._alias_row(alias)))

    def set_status(self, target: VersionState, status: ModelStatus) -> None:
        self._conn.execute(
            update(model_versions)
            .where(model_versions.c.id == target.id)
            .values(status=status.value)
        )

    def audit(
        self,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """Record the change's audit event, in the change's own transaction."""
        record_event(
            self._conn,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
            reason=reason,
        )

    def _alias_row(self, alias: str) -> Any:
        return (model_aliases.c.model_id == self._model_id) & (model_aliases.c.alias == alias)


@dataclass(frozen=True)
class VersionState:
    """What a rule needs to know of a version: its row id, number and status."""

    id: str
    version: int
    status: ModelStatus


def _lock_model(conn: Connection, name: str) -> str:
    """The model's id, with its row locked until the transaction ends (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serializes writers)."""
    check_model_name(name)
    row = conn.execute(
        select(registered_models.c.id).where(registered_models.c.name == name).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no model named {name!r}", hint="`loopline models ls` lists them")
    return str(row.id)


def _alias_target(conn: Connection, model_id: str, alias: str) -> int | None:
    row = conn.execute(
        select(model_versions.c.version)
        .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
        .where((model_aliases.c.model_id == model_id) & (model_aliases.c.alias == alias))
    ).first()
    return None if row is None else int(row.version)


def _joined() -> Any:
    return select(model_versions, registered_models.c.name.label("model_name")).join(
        registered_models, registered_models.c.id == model_versions.c.model_id
    )


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model=row.model_name,
        version=row.version,
        status=ModelStatus(row.status),
        flavor=row.flavor,
        package_hash=row.package_hash,
        size_bytes=row.size_bytes,
        signature=json.loads(row.signature_json),
        manifest=json.loads(row.manifest_json),
        run_id=row.run_id,
        source_version_id=row.source_version_id,
        extra=json.loads(row.extra_json),
        description=row.description,
        tags=json.loads(row.tags_json),
        card_hash=row.card_hash,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False, default=str)
