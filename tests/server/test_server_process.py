"""`loopline server` as a real process on a real port: auth forced on 0.0.0.0 (and no
token until one is created), the Host allow-list, the failed-login limit per address,
traversal spellings over the wire, no secret in the output, --insecure-no-auth's
warning, and SIGTERM letting a request in flight finish."""

from __future__ import annotations

import http.client
import os
import signal
import socket
from collections.abc import Iterator

import httpx
import pytest

from fixtures.server_process import Server, loopline, running
from fixtures.stores import drop_pg_schema, make_pg_schema
from fixtures.waiting import eventually

PASSWORD = "hunter2pw"  # in the store URI; PostgreSQL here trusts and ignores it

# its servers are module-scoped: one process runs the module
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server-process")]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on 0.0.0.0 started without any auth flag, on PostgreSQL (a password in its
    URI) when it is reachable, else SQLite."""
    schema = None
    store_uri = None
    try:
        schema, store_uri = make_pg_schema()
        store_uri = store_uri.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)
    except Exception:
        if os.environ.get("CI"):
            raise
    try:
        with running(
            tmp_path_factory.mktemp("secured"), "--host", "0.0.0.0", store_uri=store_uri
        ) as s:
            yield s
    finally:
        if schema is not None:
            drop_pg_schema(schema)


@pytest.fixture(scope="module")
def admin_token(secured: Server) -> str:
    """Created with `loopline tokens create`, after the server started with none."""
    assert "no token exists" in secured.output() and "tokens create" in secured.output()
    answer = httpx.get(f"{secured.url}/api/v1/whoami")
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"]["type"] == "Unauthorized"
    made = loopline(secured, "tokens", "create", "--user", "alice", "--role", "admin")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_auth_is_on_off_loopback_and_a_new_token_works_at_once(
    secured: Server, admin_token: str
) -> None:
    answer = httpx.get(
        f"{secured.url}/api/v1/whoami", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert answer.json() == {"user": "alice", "role": "admin"}
    assert httpx.get(f"{secured.url}/api/v1/whoami").status_code == 401


def test_foreign_host_names_are_refused(secured: Server) -> None:
    for host, status in (("evil.example", 400), (f"localhost:{secured.port}", 200), ("[::1]", 200)):
        answer = httpx.get(f"{secured.url}/api/v1/health", headers={"Host": host})
        assert answer.status_code == status, host
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{secured.url}/api/v1/health", headers={"Host": "evil.example"}).json()[
        "error"
    ]


def test_failed_logins_from_one_address_get_429(secured: Server, admin_token: str) -> None:
    wrong = {"Authorization": "Bearer llt_" + "2" * 12 + "_" + "c" * 43}
    good = {"Authorization": f"Bearer {admin_token}"}
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, base_url=secured.url) as attacker:
        codes = [attacker.get("/api/v1/whoami", headers=wrong).status_code for _ in range(10)]
        assert codes == [401] * 10
        blocked = attacker.get("/api/v1/whoami", headers=good)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert httpx.get(f"{secured.url}/api/v1/whoami", headers=good).status_code == 200


def raw_get(port: int, target: str, headers: dict[str, str]) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", f"127.0.0.1:{port}")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_traversal_spellings_over_the_wire_get_400(secured: Server, admin_token: str) -> None:
    from server.traversal import SPELLINGS

    headers = {"Authorization": f"Bearer {admin_token}"}
    for name, spelling in SPELLINGS.items():
        status, body = raw_get(secured.port, f"/api/v1/tokens/{spelling}", headers)
        assert status == 400 and '"MalformedRequest"' in body, (name, status, body)
        assert "root:" not in body


def test_no_token_or_password_in_the_output(secured: Server, admin_token: str) -> None:
    httpx.get(f"{secured.url}/api/v1/whoami", headers={"Authorization": f"Bearer {admin_token}x"})
    output = secured.output()
    assert "loopline server on http://0.0.0.0" in output
    assert admin_token not in output and admin_token.split("_", 2)[2] not in output
    assert PASSWORD not in output


@pytest.fixture(scope="module")
def insecure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("insecure")
    with running(root, "--host", "0.0.0.0", "--insecure-no-auth", "--workers", "2") as server:
        yield server


def test_insecure_no_auth_warns_and_everyone_is_admin(insecure: Server) -> None:
    assert "INSECURE" in insecure.output()
    answer = httpx.get(f"{insecure.url}/api/v1/whoami")
    assert answer.json() == {"user": "builder", "role": "admin"}


def test_sigterm_lets_a_request_in_flight_finish(insecure: Server) -> None:
    body = b'{"user": "drained", "role": "reader"}'
    with socket.create_connection(("127.0.0.1", insecure.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/tokens HTTP/1.1\r\n"
            + f"Host: 127.0.0.1:{insecure.port}\r\n".encode()
            + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # the app is reading the body
        insecure.process.send_signal(signal.SIGTERM)
        eventually(
            lambda: "Waiting for connections to close" in insecure.output(),
            timeout=30,
            message="the server did not start shutting down",
        )
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer
    assert b'"user":"drained"' in answer
    assert insecure.process.wait(60) == 0, insecure.output()[-2000:]
