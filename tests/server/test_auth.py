"""Who may call the platform server: tokens (Bearer, or basic with the token as password),
roles across routes, the admin token API, failed-login limits, a trusted proxy's header.
In-process, on SQLite and PostgreSQL (the tokens live in the metadata store)."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fixtures.waiting import eventually
from loopline.errors import InvalidInput
from loopline.server._auth import FailedLogins, TokenAuthenticator
from server._inprocess import app_client

ROLES = ("reader", "writer", "deployer", "approver", "admin")


@pytest.fixture
def served(project) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    """(the app with token auth, its stores); revocation seen within 0.2 s."""
    from loopline.server import create_app

    authenticator = TokenAuthenticator(lambda: project.metadata.tokens, cache_seconds=0.2)
    return create_app(project, authenticator=authenticator), project


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_type(answer: Any) -> str:
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    return str(answer.json()["error"]["type"])


def test_no_or_bad_credentials_get_401_with_the_scheme(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    _, token = opened.metadata.tokens.create("alice", "reader", created_by="root")
    _, old = opened.metadata.tokens.create(
        "old", "admin", created_by="root", lifetime=timedelta(seconds=-1)
    )
    client = app_client(app)
    assert client.get("/api/v1/health").status_code == 200  # public
    refused: list[dict[str, Any]] = [
        {},
        bearer(token[:-2]),
        bearer(old),
        bearer("llt_" + "0" * 12 + "_" + "a" * 43),
        {"Authorization": "Bearer"},
        {"Authorization": "Token " + token},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"alice:").decode()},
        {"Authorization": ("Bearer " + token + "\u00e9").encode("latin-1")},
    ]
    for headers in refused:
        answer = client.get("/api/v1/whoami", headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert error_type(answer) == "Unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert token not in answer.text and old not in answer.text
    ok = client.get("/api/v1/whoami", headers=bearer(token))
    assert ok.status_code == 200 and ok.json() == {"user": "alice", "role": "reader"}


def test_basic_auth_with_the_token_as_password_is_accepted(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    _, token = opened.metadata.tokens.create("bob", "writer", created_by="root")
    basic = base64.b64encode(f"anything:{token}".encode()).decode()
    answer = app_client(app).get("/api/v1/whoami", headers={"Authorization": f"Basic {basic}"})
    assert answer.json() == {"user": "bob", "role": "writer"}  # the token names the user


def test_each_role_reaches_what_it_may_and_no_more(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    client = app_client(app)
    for role in ROLES:
        _, token = opened.metadata.tokens.create(f"u-{role}", role, created_by="root")
        assert client.get("/api/v1/whoami", headers=bearer(token)).json()["role"] == role
        listed = client.get("/api/v1/tokens", headers=bearer(token))
        created = client.post(
            "/api/v1/tokens", headers=bearer(token), json={"user": "x", "role": "reader"}
        )
        if role == "admin":
            assert (listed.status_code, created.status_code) == (200, 201)
        else:
            assert (listed.status_code, created.status_code) == (403, 403)
            assert (
                error_type(listed) == "Forbidden" and "admin" in listed.json()["error"]["message"]
            )
    assert len(opened.metadata.tokens.list_tokens()) == len(ROLES) + 1


def test_admins_manage_tokens_over_http_and_revocation_takes_effect(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    _, admin = opened.metadata.tokens.create("root", "admin", created_by="setup")
    client = app_client(app)
    made = client.post(
        "/api/v1/tokens",
        headers=bearer(admin),
        json={"user": "carol", "role": "deployer", "expires": "90d"},
    )
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["user"] == "carol" and new["created_by"] == "root" and new["expires_at"]
    assert client.get("/api/v1/whoami", headers=bearer(new["token"])).json()["user"] == "carol"
    listing = client.get("/api/v1/tokens", headers=bearer(admin)).json()["tokens"]
    assert {t["id"] for t in listing} >= {new["id"]}
    assert new["token"] not in str(listing) and "hash" not in str(listing)
    shown = client.get(f"/api/v1/tokens/{new['id']}", headers=bearer(admin)).json()
    assert shown["last_used_at"] is not None  # the call above used it
    revoked = client.delete(f"/api/v1/tokens/{new['id']}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    eventually(
        lambda: client.get("/api/v1/whoami", headers=bearer(new["token"])).status_code,
        until=lambda status: status == 401,
        timeout=5,
        message="a revoked token was still accepted",
    )
    events = opened.metadata.audit.list_events(object_id=new["id"])
    assert {(e.action, e.actor) for e in events} == {
        ("token.create", "root"),
        ("token.revoke", "root"),
    }


def test_bad_token_requests_are_refused_and_store_nothing(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    _, admin = opened.metadata.tokens.create("root", "admin", created_by="setup")
    client = app_client(app)
    bodies: list[Any] = [
        {"user": "x"},
        {"user": "x", "role": 3},
        {"user": 3, "role": "reader"},
        {"user": "x", "role": "superuser"},
        {"user": "../etc", "role": "reader"},
        {"user": "x\u0000", "role": "reader"},
        {"user": "x", "role": "reader", "expires": "nan"},
        {"user": "x", "role": "reader", "expires": "inf"},
        {"user": "x", "role": "reader", "expires": 90},
        {"user": "x", "role": "reader", "created_by": "someone-else"},
        ["user", "x"],
        None,
    ]
    for body in bodies:
        answer = client.post("/api/v1/tokens", headers=bearer(admin), json=body)
        assert 400 <= answer.status_code < 500, (body, answer.text)
        error_type(answer)
    for raw in (b"{", b"\xff\xfe", b'{"user": "x", "role": NaN}'):
        answer = client.post(
            "/api/v1/tokens",
            headers={**bearer(admin), "content-type": "application/json"},
            content=raw,
        )
        assert 400 <= answer.status_code < 500, (raw, answer.text)
    for token_id in ("nope", "0" * 13, "ABCDEF012345"):
        answer = client.get(f"/api/v1/tokens/{token_id}", headers=bearer(admin))
        assert answer.status_code == 422 and error_type(answer) == "InvalidInput"
    unknown = client.delete("/api/v1/tokens/" + "0" * 12, headers=bearer(admin))
    assert unknown.status_code == 404 and error_type(unknown) == "NotFound"
    assert len(opened.metadata.tokens.list_tokens()) == 1


def test_failed_logins_are_limited_per_address(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    now = [1000.0]
    authenticator = app.state.authenticator
    authenticator.failures = FailedLogins(limit=10, window_seconds=60, clock=lambda: now[0])
    _, token = opened.metadata.tokens.create("alice", "reader", created_by="root")
    attacker = app_client(app, client=("10.1.1.1", 40000))
    wrong = bearer("llt_" + "1" * 12 + "_" + "b" * 43)
    assert [attacker.get("/api/v1/whoami", headers=wrong).status_code for _ in range(10)] == [
        401
    ] * 10
    blocked = attacker.get("/api/v1/whoami", headers=bearer(token))
    assert blocked.status_code == 429 and error_type(blocked) == "TooManyAttempts"
    assert int(blocked.headers["retry-after"]) == 60
    other = app_client(app, client=("10.1.1.2", 40000))
    assert other.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    assert other.get("/api/v1/whoami").status_code == 401  # no credentials: not a failure
    now[0] += 61
    assert attacker.get("/api/v1/whoami", headers=bearer(token)).status_code == 200


def test_last_use_is_written_at_most_once_a_minute(served) -> None:  # type: ignore[no-untyped-def]
    app, opened = served
    record, token = opened.metadata.tokens.create("alice", "reader", created_by="root")
    client = app_client(app)
    client.get("/api/v1/whoami", headers=bearer(token))
    first = opened.metadata.tokens.get(record.id).last_used_at
    assert first is not None
    for _ in range(3):
        client.get("/api/v1/whoami", headers=bearer(token))
    assert opened.metadata.tokens.get(record.id).last_used_at == first


def _proxy_app(root: Path, users: str) -> Any:
    from loopline.server._options import ServerOptions
    from loopline.server._process import build_app

    (root / "loopline.toml").write_text(
        (root / "loopline.toml").read_text() + f"\n[auth.users]\n{users}\n"
    )
    options = ServerOptions(
        trust_header="X-Forwarded-User", trusted_proxies=("10.9.0.0/24",), project=str(root)
    )
    return build_app(options)


def test_a_trusted_proxy_names_the_user_and_others_cannot(project) -> None:  # type: ignore[no-untyped-def]
    app = _proxy_app(project.settings.root, 'alice = "deployer"\n"bob@example.com" = "reader"')
    proxy = app_client(app, client=("10.9.0.7", 40000))
    named = {"X-Forwarded-User": "alice"}
    assert proxy.get("/api/v1/whoami", headers=named).json() == {
        "user": "alice",
        "role": "deployer",
    }
    bob = proxy.get("/api/v1/whoami", headers={"X-Forwarded-User": "bob@example.com"})
    assert bob.json()["role"] == "reader"
    stranger = proxy.get("/api/v1/whoami", headers={"X-Forwarded-User": "mallory"})
    assert stranger.status_code == 403 and error_type(stranger) == "Forbidden"
    outsider = app_client(app, client=("10.9.1.7", 40000))
    assert outsider.get("/api/v1/whoami", headers=named).status_code == 401  # header ignored
    _, token = app.state.stores.metadata.tokens.create("svc", "writer", created_by="root")
    assert outsider.get("/api/v1/whoami", headers=bearer(token)).json()["user"] == "svc"
    assert proxy.get("/api/v1/whoami", headers=bearer(token)).json()["user"] == "svc"
    app.state.stores.close()


@pytest.mark.parametrize(
    "users", ['alice = "root"', '"../x" = "reader"', "alice = 3", 'alice = ["admin"]']
)
def test_a_bad_users_table_is_refused_at_start(project, users: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput):
        _proxy_app(project.settings.root, users)
