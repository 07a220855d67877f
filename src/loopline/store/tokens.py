"""API tokens of the platform server: who may call it, with which role.

A token is `llt_<id>_<secret>`: `llt_` makes it recognisable (loopline.redact masks it in
logs and messages), the 12-hex-digit id finds its row without a scan, and the secret is
32 random bytes (URL-safe base64). The token is shown once, when it is created; only a
SHA-256 of it is stored. A slow password hash would add nothing: 256 random bits cannot be
guessed, and every request checks a token. A token can expire (`expires_at`) and be
revoked (`revoked_at`, kept for the record); `last_used_at` is written by the server at
most once a minute per token (see `touch`), never once per request.

Creating and revoking a token are audit events (`token.create`, `token.revoke`), written
in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select, update

from loopline.errors import InvalidInput, NotFound
from loopline.store._schema import api_tokens
from loopline.store.audit import record_event

if TYPE_CHECKING:
    from loopline.store._db import Database

PREFIX = "llt_"
ROLES = ("reader", "writer", "deployer", "approver", "admin")  # = server's Role, lowest first
MAX_LIFETIME = timedelta(days=3650)
_ID = re.compile(r"[0-9a-f]{12}")
_TOKEN = re.compile(r"llt_([0-9a-f]{12})_[A-Za-z0-9_\-]{43}")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,127}")
_LIFETIME = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class ApiToken:
    """A stored token's record: never the token itself, nor its hash."""

    id: str
    user: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired at `now`."""
        now = now or datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (times in ISO 8601)."""

        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "id": self.id,
            "user": self.user,
            "role": self.role,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


def check_user(user: object) -> str:
    """A user name as tokens and the trusted header carry it: 1-128 letters, digits and
    _ . @ + - (an e-mail address fits), starting with a letter or digit."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        shown = repr(user)[:80] if isinstance(user, str) else type(user).__name__
        raise InvalidInput(
            f"invalid user name {shown}",
            hint="use 1-128 letters, digits and _ . @ + - starting with a letter or digit",
        )
    return user


def check_role(role: object) -> str:
    """One of ROLES (case-insensitive), lower-cased."""
    name = role.strip().lower() if isinstance(role, str) else None
    if name not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    return name


def check_token_id(token_id: object) -> str:
    """A token id: 12 lowercase hex digits (what `tokens ls` shows)."""
    if not isinstance(token_id, str) or not _ID.fullmatch(token_id):
        shown = repr(token_id)[:40] if isinstance(token_id, str) else type(token_id).__name__
        raise InvalidInput(f"invalid token id {shown}: a token id is 12 hex digits")
    return token_id


def parse_lifetime(text: str) -> timedelta:
    """A lifetime such as 90d, 12h, 30m or 2w (at most ten years)."""
    found = _LIFETIME.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput(
            f"invalid lifetime {text!r}", hint="a whole number and a unit: 30m, 12h, 90d, 2w"
        )
    lifetime = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if lifetime > MAX_LIFETIME:
        raise InvalidInput(f"lifetime {text!r} is over ten years; leave it out for no expiry")
    return lifetime


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token, or None when `token` is not one."""
    found = _TOKEN.fullmatch(token)
    return None if found is None else found.group(1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class TokenStore:
    """SQL operations on API tokens; reached as `MetadataStore.tokens`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        user: str,
        role: str,
        *,
        created_by: str,
        lifetime: timedelta | None = None,
    ) -> tuple[ApiToken, str]:
        """A new token for `user` with `role`; returns its record and the token, which is
        not stored and cannot be shown again."""
        user, role = check_user(user), check_role(role)
        now = datetime.now(UTC)
        token_id = secrets.token_hex(6)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = ApiToken(
            id=token_id,
            user=user,
            role=role,
            created_at=now,
            created_by=created_by,
            expires_at=None if lifetime is None else now + lifetime,
            revoked_at=None,
            last_used_at=None,
        )
        with self._db.write("create token") as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=token_id,
                    user=user,
                    role=role,
                    token_hash=_digest(token),
                    created_at=now,
                    created_by=created_by,
                    expires_at=record.expires_at,
                )
            )
            record_event(
                conn,
                actor=created_by,
                action="token.create",
                object_type="token",
                object_id=token_id,
                after={"user": user, "role": role, "expires_at": record.expires_at},
            )
        return record, token

    def list_tokens(self, *, include_revoked: bool = True) -> list[ApiToken]:
        """Every token's record, oldest first."""
        query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with self._db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def get(self, token_id: str) -> ApiToken:
        """One token's record; NotFound for an unknown id."""
        check_token_id(token_id)
        with self._db.read() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id}", hint="`loopline tokens ls` lists them")
        return _record(row)

    def revoke(self, token_id: str, *, actor: str) -> ApiToken:
        """Revoke a token (at once for this store; a server notices within seconds).
        Revoking a revoked token changes nothing."""
        current = self.get(token_id)
        if current.revoked_at is not None:
            return current
        now = datetime.now(UTC)
        with self._db.write("revoke token") as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            record_event(
                conn,
                actor=actor,
                action="token.revoke",
                object_type="token",
                object_id=token_id,
                before={"user": current.user, "role": current.role},
            )
        return self.get(token_id)

    def verify(self, token: str) -> ApiToken | None:
        """The record of `token` when it is a stored token (usable or not), else None."""
        token_id = token_id_of(token)
        if token_id is None:
            return None
        with self._db.read() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or not hmac.compare_digest(str(row.token_hash), _digest(token)):
            return None
        return _record(row)

    def touch(self, used: Mapping[str, datetime]) -> None:
        """Record when tokens were last used (id -> time), in one transaction."""
        if not used:
            return
        with self._db.write("record token use") as conn:
            for token_id, moment in used.items():
                conn.execute(
                    update(api_tokens)
                    .where(api_tokens.c.id == token_id)
                    .values(last_used_at=moment)
                )

    def count_usable(self) -> int:
        """How many tokens are neither revoked nor expired."""
        return sum(1 for token in self.list_tokens(include_revoked=False) if token.usable())


def _record(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=str(row.id),
        user=str(row.user),
        role=str(row.role),
        created_at=row.created_at,
        created_by=str(row.created_by),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
