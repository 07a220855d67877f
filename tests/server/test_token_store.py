"""API tokens in the metadata store, on SQLite and PostgreSQL: shown once, kept as a hash,
found by their id part, expired and revoked ones told apart, every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from loopline.errors import InvalidInput, NotFound
from loopline.redact import redact_text
from loopline.server._permissions import Role
from loopline.store._schema import api_tokens
from loopline.store.tokens import ROLES, parse_lifetime, token_id_of


def test_a_token_is_shown_once_and_stored_only_as_a_hash(store) -> None:  # type: ignore[no-untyped-def]
    record, token = store.tokens.create("alice", "writer", created_by="root")
    assert token.startswith("llt_") and token_id_of(token) == record.id
    with store.db.read() as conn:
        rows = conn.execute(select(api_tokens)).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert token not in stored and token.split("_", 2)[2] not in stored
    assert rows[0].token_hash != token and len(rows[0].token_hash) == 64
    assert "token_hash" not in record.to_dict() and token not in str(record.to_dict())
    found = store.tokens.verify(token)
    assert found == record
    assert (found.user, found.role, found.created_by) == ("alice", "writer", "root")


def test_only_the_exact_token_verifies(store) -> None:  # type: ignore[no-untyped-def]
    _, token = store.tokens.create("alice", "reader", created_by="root")
    last = token[-1]
    altered = token[:-1] + ("A" if last != "A" else "B")
    other_id = f"llt_{'0' * 12}_{token.split('_', 2)[2]}"
    for wrong in (altered, other_id, token + "x", token[:-1], "", "llt_", token.upper(), "Bearer"):
        assert store.tokens.verify(wrong) is None, wrong
    assert store.tokens.verify(token) is not None


def test_tokens_expire_and_revoke_and_are_listed(store) -> None:  # type: ignore[no-untyped-def]
    short, _ = store.tokens.create(
        "bob", "deployer", created_by="root", lifetime=timedelta(hours=1)
    )
    forever, _ = store.tokens.create("carol", "admin", created_by="root")
    assert short.expires_at is not None and forever.expires_at is None
    later = datetime.now(UTC) + timedelta(hours=2)
    assert short.usable() and not short.usable(later) and forever.usable(later)
    assert store.tokens.count_usable() == 2
    revoked = store.tokens.revoke(forever.id, actor="root")
    assert revoked.revoked_at is not None and not revoked.usable()
    assert store.tokens.revoke(forever.id, actor="root") == revoked  # again: unchanged
    assert store.tokens.count_usable() == 1
    assert [t.id for t in store.tokens.list_tokens()] == [short.id, forever.id]
    assert [t.id for t in store.tokens.list_tokens(include_revoked=False)] == [short.id]
    events = store.audit.list_events(object_id=forever.id)
    assert [(e.action, e.actor) for e in events] == [
        ("token.revoke", "root"),
        ("token.create", "root"),
    ]


def test_last_use_is_recorded(store) -> None:  # type: ignore[no-untyped-def]
    record, _ = store.tokens.create("alice", "reader", created_by="root")
    assert record.last_used_at is None
    moment = datetime.now(UTC).replace(microsecond=0)
    store.tokens.touch({record.id: moment})
    assert store.tokens.get(record.id).last_used_at == moment


def test_bad_input_is_refused_and_nothing_is_stored(store) -> None:  # type: ignore[no-untyped-def]
    bad = [
        ("", "reader"),
        ("../alice", "reader"),
        ("alice\n", "reader"),
        ("al ice", "reader"),
        ("a" * 129, "reader"),
        ("alice", "root"),
        ("alice", ""),
        (None, "reader"),
        ("alice", 3),
    ]
    for user, role in bad:
        with pytest.raises(InvalidInput):
            store.tokens.create(user, role, created_by="root")
    assert store.tokens.list_tokens() == []
    for token_id in ("0" * 11, "../../etc", "ABCDEF012345", "0" * 12 + "\n"):
        with pytest.raises(InvalidInput):
            store.tokens.get(token_id)
    with pytest.raises(NotFound):
        store.tokens.revoke("0" * 12, actor="root")


def test_lifetimes_parse_and_bad_ones_are_refused() -> None:
    assert parse_lifetime("90d") == timedelta(days=90)
    assert parse_lifetime("12h") == timedelta(hours=12)
    assert parse_lifetime("30m") == timedelta(minutes=30)
    assert parse_lifetime("2w") == timedelta(weeks=2)
    for bad in ("", "0d", "-1d", "1.5d", "90", "d", "nand", "inf", "1y", "99999w", "90d\n"):
        with pytest.raises(InvalidInput):
            parse_lifetime(bad)


def test_the_store_roles_are_the_server_roles() -> None:
    assert tuple(role.name.lower() for role in sorted(Role)) == ROLES


def test_a_token_in_any_text_is_redacted() -> None:
    token = "llt_0123456789ab_" + "x1_-" * 11
    assert token not in redact_text(f"failed with Bearer {token}")
    assert token not in redact_text(f"token={token}&other=1")
