"""Signing in to the UI of a server with token auth, over HTTP (in-process): the login
form, the session cookie and what it may do, its end (log out, revocation, expiry), and
the refusals (bad or forged credentials, the failed-login limit, foreign forms)."""

from __future__ import annotations

import itertools
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.waiting import eventually
from loopline.errors import LooplineError
from loopline.server._sessions import COOKIE_PREFIX, SessionKey
from server._inprocess import app_client
from ui.conftest import AuthApp

_addresses = itertools.count(1)


def client_of(auth_app: AuthApp, **kwargs: Any) -> Any:
    """A client from an address of its own: the failed-login limit counts per address."""
    return app_client(auth_app.app, client=(f"10.9.0.{next(_addresses)}", 40000), **kwargs)


def cookie_name(auth_app: AuthApp) -> str:
    return str(auth_app.app.state.session_key.cookie_name)


def log_in(client: Any, token: str, target: str = "/", **headers: str) -> Any:
    return client.post(
        "/login", data={"token": token, "next": target}, headers=headers, follow_redirects=False
    )


def test_pages_send_a_browser_without_a_session_to_the_login_form(auth_app: AuthApp) -> None:
    client = client_of(auth_app)
    answer = client.get("/experiments/churn?page=2", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fexperiments%2Fchurn%3Fpage%3D2"
    htmx = client.get("/experiments/churn", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/login?next=")
    form = client.get("/login?next=/experiments/churn")
    assert form.status_code == 200 and 'name="token" type="password"' in form.text
    assert 'name="next" value="/experiments/churn"' in form.text


def test_a_bad_token_shows_the_form_again_with_401(auth_app: AuthApp) -> None:
    client = client_of(auth_app)
    for bad in ("nope", auth_app.token[:-1] + "x", ""):
        answer = log_in(client, bad)
        assert answer.status_code == 401 and not answer.cookies
        assert 'class="error" role="alert">the token is unknown' in answer.text
        assert answer.headers["content-type"].startswith("text/html")


def test_a_good_token_starts_a_session_that_reads_pages(auth_app: AuthApp) -> None:
    client = client_of(auth_app)
    answer = log_in(client, f"  {auth_app.token}\n", "/experiments/churn")
    assert answer.status_code == 303 and answer.headers["location"] == "/experiments/churn"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(auth_app)}=v1.{auth_app.token_id}.")
    assert cookie_name(auth_app).startswith(COOKIE_PREFIX) and len(cookie_name(auth_app)) == 25
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here (see the https test)
    secret = auth_app.token.rsplit("_", 1)[1]
    assert secret not in cookie
    page = client.get("/experiments/churn")
    assert page.status_code == 200 and "rita · reader" in page.text
    assert client.get("/api/v1/whoami").json() == {"user": "rita", "role": "reader"}
    # a session reads; it never writes, even for a role that could
    refused = client.post("/api/v1/experiments", json={"name": "by-cookie"})
    assert refused.status_code == 401


def test_the_cookie_is_secure_over_https(auth_app: AuthApp) -> None:
    client = client_of(auth_app, base_url="https://127.0.0.1:5000")
    assert "Secure" in log_in(client, auth_app.token).headers["set-cookie"]


def test_a_forged_or_tampered_cookie_is_refused(auth_app: AuthApp) -> None:
    signed = SessionKey(auth_app.stores.settings.state_dir).sign(
        auth_app.token_id, int(time.time()) + 60
    )
    for value in (
        signed[:-2] + ("AA" if not signed.endswith("AA") else "BB"),  # another MAC
        signed.replace(f".{auth_app.token_id}.", ".000000000000."),  # another token
        "v1.abc.1.x",
        auth_app.token,  # the token itself is not a session
    ):
        client = client_of(auth_app, cookies={cookie_name(auth_app): value})
        assert client.get("/", follow_redirects=False).status_code == 303, value
    good = client_of(auth_app, cookies={cookie_name(auth_app): signed})
    elsewhere = client_of(auth_app, cookies={f"{COOKIE_PREFIX}00000000": signed})
    assert elsewhere.get("/", follow_redirects=False).status_code == 303  # another key's
    assert good.get("/").status_code == 200


def test_failed_logins_count_toward_the_limit(auth_app: AuthApp) -> None:
    client = client_of(auth_app)
    for _ in range(10):
        assert log_in(client, "llt_000000000000_" + "a" * 43).status_code == 401
    blocked = log_in(client, auth_app.token)  # good or not: the address waits
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert "too many failed authentications" in blocked.text


def test_revoking_the_token_ends_its_sessions(auth_app: AuthApp) -> None:
    tokens = auth_app.stores.metadata.tokens
    record, token = tokens.create("sam", "reader", created_by="root")
    client = client_of(auth_app)
    assert log_in(client, token).status_code == 303
    assert client.get("/").status_code == 200
    tokens.revoke(record.id, actor="root")
    eventually(
        lambda: client.get("/", follow_redirects=False).status_code,
        until=lambda status: status == 303,
        timeout=5,
        message="the session outlived its revoked token",
    )


def test_logging_out_clears_the_cookie(auth_app: AuthApp) -> None:
    client = client_of(auth_app)
    log_in(client, auth_app.token)
    answer = client.post("/logout", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert f'{cookie_name(auth_app)}=""' in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_a_login_never_sends_the_browser_to_another_site(auth_app: AuthApp, target: str) -> None:
    answer = log_in(client_of(auth_app), auth_app.token, target)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_a_login_form_posted_from_another_site_is_refused(auth_app: AuthApp) -> None:
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
    ):
        answer = log_in(client_of(auth_app), auth_app.token, **headers)
        assert answer.status_code == 400 and not answer.cookies, headers
    same = log_in(client_of(auth_app), auth_app.token, Origin="http://127.0.0.1:5000")
    assert same.status_code == 303


def test_the_session_key_is_private_and_read_only_from_a_plain_file(tmp_path: Path) -> None:
    key = SessionKey(tmp_path / "state")
    signed = key.sign("0123456789ab", int(time.time()) + 60)
    path = tmp_path / "state" / "ui-session.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SessionKey(tmp_path / "state").token_id(signed) == "0123456789ab"  # same key
    assert key.token_id(signed, now=time.time() + 61) is None  # past its expiry
    path.chmod(0o644)
    with pytest.raises(LooplineError, match="may be read by other users"):
        SessionKey(tmp_path / "state").sign("0123456789ab", 1)
    path.chmod(0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(path, elsewhere / "ui-session.key")
    with pytest.raises(LooplineError, match="cannot read the UI session key"):
        SessionKey(elsewhere).sign("0123456789ab", 1)
