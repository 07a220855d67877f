"""The fast path (serving/_fast_path.py) answers prediction requests with the same bytes
as the FastAPI stack: two live servers on the same models, one with `fast_path=False`,
get the same raw HTTP requests (successes, every kind of error, a slow body, paths the
fast path leaves to FastAPI) and must answer with the same status line, headers (but
Date) and body, and close the connection in the same cases.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from fixtures.serving import ServingProject, live_server, open_serving_project
from loopline.serving import create_app, load_served

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MAX_BODY = 8192


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("fast-path")) as opened:
        yield opened


def _app(fast_path: bool) -> Any:
    models = {
        "churn": load_served("churn/1", warm_up=False),
        "plans": load_served("plans/1", warm_up=False),
    }
    return create_app(
        models, max_body_bytes=MAX_BODY, body_timeout_seconds=0.5, fast_path=fast_path
    )


@pytest.fixture(scope="module")
def servers(serving_project: ServingProject) -> Iterator[tuple[str, str]]:
    """(the app with its fast path, the same app without it)."""
    with live_server(_app(True)) as fast, live_server(_app(False)) as plain:
        yield fast, plain


def _request(
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    traceparent: bool = True,
    extra: str = "",
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    if traceparent:
        head += f"traceparent: {TRACEPARENT}\r\n"
    if "Transfer-Encoding" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


def _exchange(url: str, raw: bytes, *, wait: float = 0.0) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines without Date (+ b"closed" when the server closed the
    connection after answering), body) of one raw request on a new connection; a
    request is sent in two parts `wait` seconds apart when `wait` is set."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        if wait:
            sock.sendall(raw[: len(raw) // 2])
            time.sleep(wait)
            with contextlib.suppress(OSError):
                sock.sendall(raw[len(raw) // 2 :])
        else:
            sock.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received:
            received += _recv(sock)
        head, _, body = received.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += _recv(sock)
        closed = _closed(sock)
    headers = [line for line in lines if not line.lower().startswith(b"date:")]
    return status, headers + [b"closed"] * closed, body


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection mid-response"
    return chunk


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes the connection within 0.3 s of its answer."""
    ready, _, _ = select.select([sock], [], [], 0.3)
    if not ready:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _same(servers: tuple[str, str], raw: bytes, **options: Any) -> tuple[bytes, list[bytes], bytes]:
    fast, plain = (_exchange(url, raw, **options) for url in servers)
    assert fast == plain
    return fast


def _row(project: ServingProject, **extra: Any) -> bytes:
    return json.dumps({"inputs": [{**project.rows(1)[0], **extra}]}).encode()


def test_successes_answer_the_same_bytes(
    servers: tuple[str, str], serving_project: ServingProject
) -> None:
    frame = serving_project.features.head(2)
    split = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
    plans = serving_project.plans.head(2).to_dict(orient="records")
    v2 = {
        "id": "r1",
        "inputs": [
            {"name": "input", "shape": [2, 30], "datatype": "FP64", "data": frame.values.tolist()}
        ],
    }
    cases = [
        _request("/v1/deployments/churn/predict", _row(serving_project)),
        _request(
            "/v1/deployments/churn/predict",
            json.dumps({"inputs": frame.to_dict(orient="records")}).encode(),
        ),
        _request("/v1/deployments/plans/predict", json.dumps({"inputs": plans}).encode()),
        _request("/v1/deployments/churn/invocations", split),
        _request(
            "/v1/deployments/churn/invocations",
            frame.to_csv(index=False).encode(),
            content_type="text/csv",
        ),
        _request("/v2/models/churn/infer", json.dumps(v2).encode()),
        _request("/v2/models/churn/versions/1/infer", json.dumps(v2).encode()),
        _request(
            "/v1/deployments/churn/predict",
            b"5\r\n"
            + _row(serving_project)[:5]
            + b"\r\n"
            + f"{len(_row(serving_project)) - 5:x}".encode()
            + b"\r\n"
            + _row(serving_project)[5:]
            + b"\r\n0\r\n\r\n",
            extra="Transfer-Encoding: chunked\r\n",
        ),
    ]
    for raw in cases:
        status, headers, body = _same(servers, raw)
        assert status == b"HTTP/1.1 200 OK", body
        assert b"x-request-id: 4bf92f3577b34da6a3ce929d0e0e4736" in headers
        assert any(line.startswith(b"x-model-version: ") for line in headers)
        assert b"closed" not in headers


def test_dropped_fields_are_named_in_the_same_header(
    servers: tuple[str, str], serving_project: ServingProject
) -> None:
    raw = _request("/v1/deployments/churn/predict", _row(serving_project, **{"note é": "x"}))
    status, headers, _ = _same(servers, raw)
    assert status == b"HTTP/1.1 200 OK"
    assert b"x-dropped-fields: note%20%C3%A9" in headers


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (_request("/v1/deployments/churn/predict", b'{"inputs": [{"mean_radius": '), 400),
        (_request("/v1/deployments/churn/predict", b'{"inputs": [], "inputs": []}'), 400),
        (_request("/v1/deployments/churn/predict", b""), 400),
        (_request("/v1/deployments/churn/predict", b"", content_type=None), 415),
        (_request("/v1/deployments/churn/predict", b"{}", content_type="text/plain"), 415),
        (_request("/v1/deployments/churn/predict", b'{"inputs": [{"mean_radius": NaN}]}'), 422),
        (_request("/v1/deployments/churn/predict", b'{"inputs": [{"mean_radius": "x"}]}'), 422),
        (_request("/v1/deployments/plans/predict", b'{"inputs": [{"plan": "gold"}]}'), 422),
        (_request("/v1/deployments/nobody/predict", b'{"inputs": []}'), 404),
        (_request("/v1/deployments/..%2F..%2Fetc/predict", b'{"inputs": []}'), 404),
        (_request("/v1/deployments/churn/predict", b"[" * (MAX_BODY + 1)), 413),
        (_request("/invocations", b'{"inputs": []}'), 404),  # two deployments, no default
        (_request("/v1/deployments/churn/invocations", b"a,b\n1", content_type="text/csv"), 422),
        (_request("/v2/models/churn/infer", b'{"inputs": [{"name": "x"}]}'), 422),
        (_request("/v2/models/churn/infer", b"{", content_type=None), 400),
        (_request("/v2/models/nobody/infer", b"{}"), 404),
        (_request("/v2/models/churn/versions/9/infer", b"{}"), 404),
        (_request("/v2/models/churn/infer", b"{}", content_type="text/plain"), 415),
        (_request("/v1/deployments/churn/predict", b"{}", traceparent=False), 422),
    ],
)
def test_errors_answer_the_same_bytes(servers: tuple[str, str], raw: bytes, status: int) -> None:
    if b"traceparent" not in raw:  # a new random id: compared apart from its value
        fast, plain = (_exchange(url, raw) for url in servers)
        assert [h for h in fast[1] if not h.startswith(b"x-request-id")] == [
            h for h in plain[1] if not h.startswith(b"x-request-id")
        ]
        assert fast[0] == plain[0] and _error(fast[2]) == _error(plain[2])
        return
    answer, _, body = _same(servers, raw)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (answer, body)
    assert "error" in json.loads(body)


def _error(body: bytes) -> Any:
    value = json.loads(body)
    value["error"].pop("message", None)  # may quote the request id
    return value


def test_a_late_body_is_answered_408_the_same_way(
    servers: tuple[str, str], serving_project: ServingProject
) -> None:
    raw = _request("/v1/deployments/churn/predict", _row(serving_project))
    status, headers, body = _same(servers, raw, wait=1.0)
    assert status.startswith(b"HTTP/1.1 408")
    assert b"closed" in headers and json.loads(body)["error"]["type"] == "RequestTimeout"
    v2 = _request("/v2/models/churn/infer", _row(serving_project))
    status, headers, body = _same(servers, v2, wait=1.0)
    assert status.startswith(b"HTTP/1.1 408") and json.loads(body)["type"] == "RequestTimeout"


@pytest.mark.parametrize(
    "raw",
    [
        _request("/v1/deployments/churn/predict", method="GET"),
        _request("/v1/deployments/churn/predict", method="PUT"),
        _request("/v1/deployments//predict", b"{}"),
        _request("/v1/deployments/churn/predict/", b"{}"),
        _request("/v1/deployments/churn/predict/extra", b"{}"),
        _request("/v2/models/churn/versions//infer", b"{}"),
        _request("/invocations/", b"{}"),
        _request("/v1/deployments/churn/feedback", b"{}"),
    ],
)
def test_paths_left_to_fastapi_answer_the_same(servers: tuple[str, str], raw: bytes) -> None:
    _same(servers, raw)


def test_the_fast_path_matches_what_the_router_would_route() -> None:
    """Every path the fast path takes, Starlette's router routes to the same prediction
    route with the same parameters (others go to FastAPI, so need no check)."""
    from starlette.routing import compile_path

    from loopline.serving.online._fast_path import FastPath
    from loopline.serving.online.app import PROTOCOLS

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    fast = FastPath(
        never,
        None,
        PROTOCOLS,
        body_seconds=1.0,
        request_id=str,
        on_error=never,  # type: ignore[arg-type]
    )
    regexes = {path: compile_path(path)[0] for path in PROTOCOLS}
    paths = [
        "/invocations", "/invocations/", "//invocations", "/v1/deployments/a/predict",
        "/v1/deployments/a b/predict", "/v1/deployments//predict", "/v1/deployments/a/b/predict",
        "/v1/deployments/a/invocations", "/v1/deployments/a/predict\n", "/v2/models/m/infer",
        "/v2/models/m/versions/1/infer", "/v2/models/m/versions//infer", "/v2/models//infer",
        "/V1/deployments/a/predict", "/v1/deployments/é/predict", "/v1/deployments/../predict",
    ]  # fmt: skip
    taken = 0
    for path in paths:
        found = fast._match(path)
        routed = [(t, m.groupdict()) for t, r in regexes.items() if (m := r.match(path))]
        if found is None:
            continue
        taken += 1
        params, protocol, _ = found
        assert routed, path
        template, groups = routed[0]
        assert (PROTOCOLS[template], groups) == (protocol, params), path
    assert taken == 8


def test_a_serving_process_freezes_its_loaded_heap(serving_project: ServingProject) -> None:
    """`freeze_heap=True` (what `serve` gives every worker) takes the loaded models out of
    the garbage collector's full collections once they are ready; the default leaves the
    heap alone (an app inside someone else's process)."""
    import gc

    gc.unfreeze()
    try:
        with live_server(create_app({"churn": load_served("churn/1", warm_up=False)})):
            assert gc.get_freeze_count() == 0
        models = {"churn": load_served("churn/1", warm_up=False)}
        with live_server(create_app(models, freeze_heap=True)) as url:
            assert gc.get_freeze_count() > 10_000
            answer = _exchange(
                url, _request("/v1/deployments/churn/predict", _row(serving_project))
            )
            assert answer[0] == b"HTTP/1.1 200 OK"
    finally:
        gc.unfreeze()
