"""The server's guards, in-process: the Host allow-list (DNS rebinding), CORS off unless
asked, the body limit, security headers, and no secret in an answer or a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.errors import InvalidInput
from loopline.server._options import ServerOptions
from server._inprocess import app_client


@pytest.fixture
def root(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    from loopline.config import init_project

    init_project(tmp_path)
    return tmp_path


@pytest.fixture
def make_app(root: Path) -> Iterator[Any]:
    """Builds the app `loopline server` would with the given options (auth off)."""
    from loopline.server._process import build_app

    built: list[Any] = []

    def make(**options: Any) -> Any:
        app = build_app(ServerOptions(project=str(root), **options))
        built.append(app)
        return app

    yield make
    for app in built:
        app.state.stores.close()


def test_only_this_servers_host_names_are_answered(make_app) -> None:  # type: ignore[no-untyped-def]
    client = app_client(make_app(allowed_hosts=("loopline.example.com",)))
    for host in (
        "127.0.0.1:5000",
        "localhost",
        "LOCALHOST:80",
        "[::1]:5000",
        "loopline.example.com",
    ):
        assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200, host
    for host in (
        "evil.example",
        "127.0.0.1.evil.example",
        "loopline.example.com.evil",
        "",
        "a:b:c",
    ):
        answer = client.get("/api/v1/whoami", headers={"Host": host})
        assert answer.status_code == 400, host
        assert answer.json()["error"]["type"] == "MalformedRequest"
        assert "--allowed-host" in answer.json()["error"]["hint"]


def test_a_wildcard_allows_any_host(make_app) -> None:  # type: ignore[no-untyped-def]
    client = app_client(make_app(allowed_hosts=("*",)))
    assert client.get("/api/v1/health", headers={"Host": "anything.example"}).status_code == 200


def preflight(client: Any, origin: str) -> Any:
    return client.options(
        "/api/v1/whoami",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )


def test_cors_is_off_unless_an_origin_is_named(make_app) -> None:  # type: ignore[no-untyped-def]
    closed = app_client(make_app())
    answer = closed.get("/api/v1/whoami", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight(closed, "https://evil.example").headers
    opened = app_client(make_app(cors_origins=("https://ui.example",)))
    allowed = preflight(opened, "https://ui.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in preflight(opened, "https://evil.example").headers


def test_bodies_over_the_limit_get_413_and_store_nothing(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(max_body_mb=0.001)  # 1048 bytes
    client = app_client(app)
    big = {"user": "alice", "role": "reader", "expires": "90d", "pad": "x" * 2000}
    declared = client.post("/api/v1/tokens", json=big)
    assert declared.status_code == 413 and declared.json()["error"]["type"] == "PayloadTooLarge"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed bytes are counted
        yield b'{"user": "alice", "role": "reader", "pad": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    streamed = client.post(
        "/api/v1/tokens", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413 and streamed.json()["error"]["type"] == "PayloadTooLarge"
    assert app.state.stores.metadata.tokens.list_tokens() == []
    small = client.post("/api/v1/tokens", json={"user": "alice", "role": "reader"})
    assert small.status_code == 201


def test_every_answer_carries_the_security_headers(make_app) -> None:  # type: ignore[no-untyped-def]
    client = app_client(make_app())
    answers = [
        client.get("/api/v1/whoami"),
        client.get("/api/v1/no-such-route"),
        client.get("/api/v1/tokens/nope"),
        client.get("/api/v1/whoami", headers={"Host": "evil.example"}),
        client.get("/api/v1/tokens/%2e%2e"),
    ]
    assert [a.status_code for a in answers] == [200, 404, 422, 400, 400]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-type"].startswith("application/json")


def test_no_token_or_password_reaches_an_answer_or_a_log(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from loopline.project import open_stores, project_settings
    from loopline.server._auth import TokenAuthenticator
    from loopline.server.app import create_app

    opened = open_stores(project_settings(root))
    app = create_app(opened, authenticator=TokenAuthenticator(lambda: opened.metadata.tokens))
    client = app_client(app)
    _, token = opened.metadata.tokens.create("alice", "admin", created_by="root")
    guessed = "llt_" + "0" * 12 + "_" + "s3cr3t" * 8
    secret_uri = "postgresql://loopline:hunter2pw@db.example/loopline"
    with caplog.at_level(logging.DEBUG):
        answers = [
            client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {guessed}"}),
            client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}),
            client.post(
                "/api/v1/tokens",
                headers={"Authorization": f"Bearer {token}"},
                json={"user": secret_uri, "role": "reader"},
            ),
            client.post(
                "/api/v1/tokens",
                headers={"Authorization": f"Bearer {token}"},
                json={"user": "bob", "role": f"admin {guessed}"},
            ),
        ]
    assert [a.status_code for a in answers] == [401, 200, 422, 400]
    shown = " ".join(a.text for a in answers) + caplog.text
    for secret in (token, guessed, "hunter2pw", token.split("_", 2)[2]):
        assert secret not in shown
    opened.close()


@pytest.mark.parametrize(
    "options",
    [
        {"port": 0},
        {"port": 70000},
        {"workers": 0},
        {"max_body_mb": float("nan")},
        {"max_body_mb": float("inf")},
        {"max_body_mb": -1},
        {"artifacts": "s3"},
        {"auth": True, "insecure_no_auth": True},
        {"trust_header": "X-Forwarded-User"},
        {"trusted_proxies": ("10.0.0.1",)},
        {"trust_header": "X-User: evil", "trusted_proxies": ("10.0.0.1",)},
        {"cors_origins": ("evil.example",)},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ServerOptions(**options).check()


def test_auth_is_forced_off_loopback() -> None:
    assert not ServerOptions(host="127.0.0.1").auth_on
    assert not ServerOptions(host="localhost").auth_on
    assert not ServerOptions(host="::1").auth_on
    assert ServerOptions(host="127.0.0.1", auth=True).auth_on
    assert ServerOptions(host="0.0.0.0").auth_on
    assert ServerOptions(host="192.168.1.4").auth_on
    assert ServerOptions(host="loopline.example.com").auth_on
    assert not ServerOptions(host="0.0.0.0", insecure_no_auth=True).auth_on


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "0"],
        ["--port", "abc"],
        ["--workers", "0"],
        ["--max-body-mb", "nan"],
        ["--artifacts", "s3"],
        ["--auth", "--insecure-no-auth"],
        ["--trust-header", "X-Forwarded-User"],
        ["--trust-header", "X-Forwarded-User", "--trusted-proxy", "not-an-address"],
        ["--cors-origin", "evil.example"],
        ["--log-level", "loud"],
    ],
)
def test_the_server_command_refuses_bad_flags_in_one_line(
    root: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from loopline.cli.app import run as cli

    clean_env.chdir(root)
    code = cli(["server", *args])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in out + err
    assert len([line for line in err.splitlines() if line.startswith("Error")]) <= 1


def test_the_server_command_needs_a_project(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.app import run as cli

    empty = tmp_path / "nowhere"
    empty.mkdir()
    clean_env.chdir(empty)
    assert cli(["server"]) == 7  # ProjectNotFound
    assert "no loopline project" in capsys.readouterr().err
