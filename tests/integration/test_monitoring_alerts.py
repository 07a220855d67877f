"""Alert delivery against real receivers on 127.0.0.1: a webhook (with its SSRF defences,
redirects, retries and timeouts), a log line, and a file appended to from many threads."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.errors import InvalidInput
from loopline.monitoring import _webhook
from loopline.monitoring.alerts import Alert, Delivery, deliver, webhook_payload
from loopline.monitoring.policy import Action

SECRET = "T0SECRETPART"  # the part of a webhook URL that must never be shown


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers with the next
    status of `answers` (200 once they run out)."""

    port: int
    answers: list[int] = field(default_factory=list)
    requests: list[dict[str, object]] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1", path: str = f"/services/{SECRET}") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"http://127.0.0.1:{state.port}/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def an_alert(**changes: object) -> Alert:
    values: dict[str, object] = {
        "deployment": "credit",
        "check": "drift",
        "severity": "warning",
        "summary": "2 of 20 features drifted: age (psi 0.41), income (psi 0.27)",
        "details": {"features": {"age": {"psi": 0.41}, "income": {"psi": 0.27}}},
        "report_id": "r-123",
        "opened_at": datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
        "link": "http://loopline.example/reports/r-123",
    }
    values.update(changes)
    return Alert(**values)  # type: ignore[arg-type]


def webhook(url: str, *allow: str) -> Action:
    return Action(kind="alert", when="drift", webhook=url, allow_hosts=allow)


def send(action: Action, tmp_path: Path, **options: float) -> Delivery:
    options.setdefault("backoff", 0.01)
    return deliver(an_alert(), action, project_root=tmp_path, **options)  # type: ignore[arg-type]


# --- webhook: delivery -----------------------------------------------------------------------


def test_an_allow_listed_receiver_gets_the_json_once(receiver: Receiver, tmp_path: Path) -> None:
    delivery = send(webhook(receiver.url(), "127.0.0.1"), tmp_path)
    assert delivery == Delivery("webhook", "http://127.0.0.1", True, 200, None, 1)
    (request,) = receiver.requests
    assert request["path"] == f"/services/{SECRET}"
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    body = json.loads(request["body"])  # type: ignore[arg-type]
    assert body["text"].startswith("[warning] credit drift: 2 of 20 features drifted")
    assert body["blocks"][0]["type"] == "section"
    assert body["loopline"] == an_alert().to_dict()
    assert body["loopline"]["opened_at"] == "2026-12-07T10:00:00+00:00"


def test_without_the_allow_list_a_local_receiver_is_refused(
    receiver: Receiver, tmp_path: Path
) -> None:
    delivery = send(webhook(receiver.url()), tmp_path)
    assert not delivery.ok and delivery.attempts == 0
    assert delivery.error is not None and "loopback" in delivery.error
    assert receiver.requests == []


SSRF_SPELLINGS = [
    "127.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "127.0.0.2",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "api.localhost",
    "0.0.0.0",
    "0",
    "[::]",
    "169.254.169.254",
    "[fe80::1]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
]


@pytest.mark.parametrize("host", SSRF_SPELLINGS)
def test_every_spelling_of_a_non_public_address_is_refused_before_connecting(
    receiver: Receiver, tmp_path: Path, host: str
) -> None:
    delivery = send(webhook(receiver.url(host)), tmp_path)
    assert not delivery.ok and delivery.attempts == 0, delivery
    assert delivery.error is not None and "refused" in delivery.error
    assert SECRET not in delivery.error
    assert receiver.requests == []


NON_PUBLIC_NETWORKS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
]


def spellings(address: int) -> list[str]:
    """The ways inet_aton (and so getaddrinfo) reads one IPv4 address."""
    octets = address.to_bytes(4, "big")
    dotted = ".".join(str(octet) for octet in octets)
    return [
        dotted,
        str(address),
        hex(address),
        ".".join(f"0{octet:o}" for octet in octets),
        ".".join(hex(octet) for octet in octets),
        f"{octets[0]}.{int.from_bytes(octets[1:], 'big')}",
        f"[::ffff:{dotted}]",
    ]


@st.composite
def non_public_addresses(draw: st.DrawFn) -> int:
    import ipaddress

    network = ipaddress.ip_network(draw(st.sampled_from(NON_PUBLIC_NETWORKS)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return int(network.network_address) + offset


@given(address=non_public_addresses())
def test_no_spelling_of_any_non_public_ipv4_address_gets_through(address: int) -> None:
    for host in spellings(address):
        result = _webhook.post_json(f"http://{host}:9/x", b"{}", timeout=0.2, attempts=1)
        assert not result.ok and result.attempts == 0, (host, result)
        assert result.error is not None and "refused" in result.error


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/x",
        "http://user:pw@127.0.0.1/x",
        "http://hooks.example@127.0.0.1/x",
        "http:///x",
        "http://127.0.0.1:99999/x",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/a\r\nX-Injected: 1",
        "http://127.0.0.1/caf\u00e9",
    ],
)
def test_urls_that_are_not_plain_http_are_refused(
    receiver: Receiver, tmp_path: Path, url: str
) -> None:
    delivery = send(webhook(url, "127.0.0.1"), tmp_path)
    assert not delivery.ok and delivery.attempts == 0 and delivery.error
    assert "pw" not in delivery.error and "etc/passwd" not in delivery.error
    assert receiver.requests == []


def test_the_host_is_resolved_once_and_the_checked_address_is_connected_to(
    receiver: Receiver,
) -> None:
    # a rebinding DNS: a first answer that passes the check, then one that would not
    answers = [["127.0.0.1"], ["10.255.255.1"]]
    asked: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answers[min(len(asked) - 1, 1)]

    receiver.answers = [500, 503]  # two retries: still the same, checked address
    url = receiver.url("hooks.example")
    result = _webhook.post_json(
        url, b"{}", allow_hosts=["127.0.0.1"], backoff=0.01, resolve=rebinding
    )
    assert result.ok and result.attempts == 3, result
    assert asked == [("hooks.example", receiver.port)]
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        headers = request["headers"]
        assert isinstance(headers, dict)
        assert headers["Host"] == f"hooks.example:{receiver.port}"


def test_a_name_resolving_to_any_non_public_address_is_refused(receiver: Receiver) -> None:
    def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    result = _webhook.post_json(receiver.url("hooks.example"), b"{}", resolve=mixed)
    assert not result.ok and result.attempts == 0
    assert result.error is not None and "resolved to 127.0.0.1" in result.error
    assert receiver.requests == []


def test_an_allow_listed_name_is_matched_exactly(receiver: Receiver, tmp_path: Path) -> None:
    def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    allowed = _webhook.post_json(
        receiver.url("hooks.internal"), b"{}", allow_hosts=["HOOKS.internal"], resolve=local
    )
    assert allowed.ok
    other = _webhook.post_json(
        receiver.url("hooks.internal.evil"), b"{}", allow_hosts=["hooks.internal"], resolve=local
    )
    assert not other.ok and other.attempts == 0
    assert len(receiver.requests) == 1


def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers = [302]
    delivery = send(webhook(receiver.url(), "127.0.0.1"), tmp_path)
    assert not delivery.ok and delivery.status == 302 and delivery.attempts == 1
    assert delivery.error is not None and "redirect" in delivery.error
    assert [request["path"] for request in receiver.requests] == [f"/services/{SECRET}"]


def test_a_server_error_is_retried_until_delivered(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers = [500]
    delivery = send(webhook(receiver.url(), "127.0.0.1"), tmp_path)
    assert delivery.ok and delivery.status == 200 and delivery.attempts == 2
    assert len(receiver.requests) == 2


def test_retries_are_bounded_and_client_errors_are_not_retried(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.answers = [502, 502, 502, 200]
    failed = send(webhook(receiver.url(), "127.0.0.1"), tmp_path)
    assert not failed.ok and failed.status == 502 and failed.attempts == 3
    assert failed.error is not None and "after 3 attempts" in failed.error
    receiver.answers = [404]
    refused = send(webhook(receiver.url(), "127.0.0.1"), tmp_path)
    assert not refused.ok and refused.status == 404 and refused.attempts == 1
    assert len(receiver.requests) == 4


def test_a_receiver_that_never_answers_times_out_within_bounds(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/services/{SECRET}"
        started = time.monotonic()
        delivery = send(webhook(url, "127.0.0.1"), tmp_path, timeout=0.3, attempts=2)
        elapsed = time.monotonic() - started
    assert not delivery.ok and delivery.attempts == 2 and delivery.status is None
    assert delivery.error is not None and "timed out" in delivery.error
    assert 0.6 <= elapsed < 0.6 + 0.01 + 1.5, elapsed


def test_a_closed_port_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = send(webhook(f"http://127.0.0.1:{port}/x", "127.0.0.1"), tmp_path)
    assert not delivery.ok and delivery.attempts == 3
    assert delivery.error is not None and "refused" in delivery.error.lower()


def test_the_url_is_expanded_from_the_environment_when_sent(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = webhook("${LOOPLINE_TEST_HOOK}", "127.0.0.1")
    monkeypatch.delenv("LOOPLINE_TEST_HOOK", raising=False)
    missing = send(action, tmp_path)
    assert not missing.ok and missing.attempts == 0
    assert missing.error is not None and "LOOPLINE_TEST_HOOK" in missing.error
    assert missing.target == "webhook (${LOOPLINE_TEST_HOOK})"
    monkeypatch.setenv("LOOPLINE_TEST_HOOK", receiver.url())
    delivered = send(action, tmp_path)
    assert delivered.ok and delivered.target == "http://127.0.0.1"
    part = webhook(
        f"http://127.0.0.1:{receiver.port}/services/${{LOOPLINE_TEST_PART}}", "127.0.0.1"
    )
    monkeypatch.setenv("LOOPLINE_TEST_PART", SECRET)
    assert send(part, tmp_path).ok
    assert [request["path"] for request in receiver.requests] == [f"/services/{SECRET}"] * 2


@pytest.mark.parametrize("answers", [[], [302], [500, 500, 500], [404]])
@pytest.mark.parametrize("allowed", [True, False])
def test_the_url_never_appears_in_deliveries_errors_or_logs(
    receiver: Receiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[int],
    allowed: bool,
) -> None:
    receiver.answers = list(answers)
    monkeypatch.setenv("LOOPLINE_TEST_HOOK", receiver.url(path=f"/services/{SECRET}?token=abc"))
    action = webhook("${LOOPLINE_TEST_HOOK}", *(["127.0.0.1"] if allowed else []))
    caplog.set_level(logging.DEBUG)
    delivery = send(action, tmp_path)
    shown = [repr(delivery), json.dumps(delivery.to_dict()), caplog.text, repr(action)]
    shown.append(str(action.to_dict()))
    for text in shown:
        assert SECRET not in text and "token=abc" not in text, text


# --- payload, log and file -------------------------------------------------------------------


def test_the_payload_escapes_slack_markup_and_holds_plain_json() -> None:
    alert = an_alert(
        summary="psi <0.5> & rising\non two lines",
        details={"psi": math.nan, "worst": math.inf, "features": ("age", "income")},
    )
    payload = webhook_payload(alert)
    assert (
        payload["text"] == "[warning] credit drift: psi <0.5> & rising on two lines (report r-123)"
    )
    assert "&lt;0.5&gt; &amp; rising" in payload["blocks"][0]["text"]["text"]
    assert payload["loopline"]["details"] == {
        "psi": None,
        "worst": None,
        "features": ["age", "income"],
    }
    json.dumps(payload, allow_nan=False)


def test_a_log_action_writes_one_warning_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="loopline.monitoring.alerts")
    delivery = deliver(an_alert(), Action(kind="alert", log=True), project_root=tmp_path)
    assert delivery == Delivery("log", "log", True)
    (record,) = [r for r in caplog.records if r.name == "loopline.monitoring.alerts"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == an_alert().line
    assert "\n" not in record.getMessage()


def test_concurrent_file_appends_give_whole_lines(tmp_path: Path) -> None:
    action = Action(kind="alert", file="monitoring/alerts.jsonl")
    threads_count, per_thread = 8, 40
    # long lines: a write that interleaved would show as a broken JSON line
    long = "x" * 3000
    errors: list[Delivery] = []

    def writer(index: int) -> None:
        for number in range(per_thread):
            alert = an_alert(details={"writer": index, "number": number, "padding": long})
            delivery = deliver(alert, action, project_root=tmp_path)
            if not delivery.ok:
                errors.append(delivery)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    lines = (tmp_path / "monitoring" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == threads_count * per_thread
    seen = {
        (json.loads(line)["details"]["writer"], json.loads(line)["details"]["number"])
        for line in lines
    }
    assert len(seen) == threads_count * per_thread


@pytest.mark.parametrize(
    "path", ["../outside.jsonl", "/tmp/outside.jsonl", ".git/alerts.jsonl", "a/../../x.jsonl"]
)
def test_a_file_outside_the_project_is_refused_when_delivering(tmp_path: Path, path: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    delivery = deliver(an_alert(), Action(kind="alert", file=path), project_root=project)
    assert not delivery.ok and delivery.error
    assert not (tmp_path / "outside.jsonl").exists() and not (tmp_path / "x.jsonl").exists()


def test_a_file_in_a_missing_project_is_not_created(tmp_path: Path) -> None:
    action = Action(kind="alert", file="alerts.jsonl")
    delivery = deliver(an_alert(), action, project_root=tmp_path / "missing")
    assert not delivery.ok and delivery.error is not None and "no project folder" in delivery.error
    assert not (tmp_path / "missing").exists()


def test_a_file_through_a_symbolic_link_is_refused_when_delivering(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    os.symlink(outside, project / "monitoring")
    action = Action(kind="alert", file="monitoring/alerts.jsonl")
    delivery = deliver(an_alert(), action, project_root=project)
    assert not delivery.ok and delivery.error is not None and "symbolic link" in delivery.error
    assert list(outside.iterdir()) == []
    os.symlink(outside / "target.jsonl", project / "last.jsonl")  # a link as the file itself
    linked = deliver(an_alert(), Action(kind="alert", file="last.jsonl"), project_root=project)
    assert not linked.ok and list(outside.iterdir()) == []


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"severity": "urgent"}, "severity is one of"),
        ({"check": "Drift!"}, "lower-case name"),
        ({"summary": "  "}, "needs a summary"),
        ({"summary": 3}, "needs a summary"),
        ({"deployment": "no spaces"}, "invalid deployment name"),
        ({"opened_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"opened_at": "2026-01-01"}, "timezone-aware"),
        ({"details": [1, 2]}, "details are a mapping"),
        ({"report_id": ""}, "report_id"),
        ({"status": "closed"}, "open or resolved"),
    ],
)
def test_a_malformed_alert_is_refused(changes: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        an_alert(**changes)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"alert": "drift"}, "sends an Alert"),
        ({"action": Action(kind="rollback")}, "needs an alert action, got rollback"),
        ({"action": "log"}, "needs an alert action"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"backoff": math.inf}, "backoff"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"attempts": 2.0}, "attempts"),
        ({"project_root": 3}, "project_root"),
    ],
)
def test_deliver_refuses_bad_arguments(
    tmp_path: Path, arguments: dict[str, object], words: str
) -> None:
    values: dict[str, object] = {
        "alert": an_alert(),
        "action": Action(kind="alert", log=True),
        "project_root": tmp_path,
    }
    values.update(arguments)
    alert, action = values.pop("alert"), values.pop("action")
    with pytest.raises(InvalidInput, match=words):
        deliver(alert, action, **values)  # type: ignore[arg-type]


# --- https: connected to the checked address, certificate checked for the host name ---------


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """An HTTPS receiver on 127.0.0.1 with a self-signed certificate for hooks.example,
    trusted through SSL_CERT_FILE (what `ssl.create_default_context` reads)."""
    import ssl
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    tls_receiver: Receiver,
) -> None:
    def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    url = f"https://hooks.example:{tls_receiver.port}/services/{SECRET}"
    result = _webhook.post_json(url, b"{}", allow_hosts=["127.0.0.1"], resolve=local)
    assert result.ok and result.target == "https://hooks.example", result
    (request,) = tls_receiver.requests
    headers = request["headers"]
    assert isinstance(headers, dict) and headers["Host"] == f"hooks.example:{tls_receiver.port}"
    # the same address under another name: the certificate does not match, nothing is sent
    wrong = f"https://other.example:{tls_receiver.port}/services/{SECRET}"
    refused = _webhook.post_json(wrong, b"{}", allow_hosts=["127.0.0.1"], resolve=local)
    assert not refused.ok and refused.attempts == 1
    assert refused.error is not None and "certificate" in refused.error
    assert SECRET not in refused.error
    assert len(tls_receiver.requests) == 1
