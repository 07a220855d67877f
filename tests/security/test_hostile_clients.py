"""What a hostile HTTP client tried on the prediction server (issue 11), each case
reproduced against a real uvicorn server on a free port:

- an integer past int64 (or past the column's type) answered 200, then broke the
  prediction log: now a 422 naming the field and the row, on every endpoint;
- a lone surrogate (`"\\ud800"`) as a key, a V2 tensor name or id, a feedback label gave
  a 500 and reset the next request on the connection: now a 400 naming where it is;
- a 500 closed its connection without saying so, so the client's next request on it
  was lost: now it says `Connection: close`;
- the 503 of a model that cannot load showed the server's cache folder: error bodies
  never name server paths (the log does);
- a client that sent headers, then a trickle of body or nothing, held its connection
  for as long as it liked: now 408 and closed after the body timeout;
- found on the way: a 60 KB key quoted into an error message held the event loop for
  seconds (messages are scanned for secrets), and a V2 shape of huge dimensions gave a
  500: names are quoted at most 60 characters long, shapes are sized without a product.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fixtures.serving import ServingProject, error_of, live_server, open_serving_project
from fixtures.waiting import eventually
from loopline.errors import InvalidInput, InvalidPath, NotFound
from loopline.serving import create_app, load_served

V1, PLANS = "/v1/deployments/default/predict", "/v1/deployments/plans/predict"
V2, PLANS_V2 = "/v2/models/default/infer", "/v2/models/plans/infer"
FEEDBACK = "/v1/deployments/plans/feedback"
JSON = {"Content-Type": "application/json"}
PLAN_ROW = {"plan": "pro", "usage": 9.5, "tenure": 12}
INT64_MAX = 2**63 - 1


class Doubler:
    """A python-function model: it can only be loaded as a pickle, which serving refuses."""

    def predict(self, data: pd.DataFrame) -> object:
        return data.iloc[:, 0].to_numpy() * 2


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("hostile")) as opened:
        yield opened


@pytest.fixture(scope="module")
def server(project: ServingProject) -> Iterator[str]:
    models = {
        "default": load_served("churn/1", warm_up=False),
        "plans": load_served("plans/1", warm_up=False),
    }
    with live_server(create_app(models, body_timeout_seconds=1.0)) as url:
        yield url


@pytest.fixture(scope="module")
def row(project: ServingProject) -> dict[str, Any]:
    return project.rows(1)[0]


def _raw(template: dict[str, Any] | list[Any], marker: str, literal: str) -> bytes:
    """`template` as JSON with the string `"marker"` replaced by the raw JSON `literal`."""
    return json.dumps(template).replace(f'"{marker}"', literal).encode()


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _columns(row: dict[str, Any], datatype: str = "FP64") -> list[dict[str, Any]]:
    return [
        {"name": name, "shape": [1], "datatype": datatype, "data": [value]}
        for name, value in row.items()
    ]


# --- integers past what the column holds -------------------------------------------------


TOO_LARGE = {
    "v1 rows, a long": (PLANS, {"inputs": [{**PLAN_ROW, "tenure": "X"}]}, "tenure"),
    "v1 columns, a long": (
        PLANS,
        {"columns": ["plan", "usage", "tenure"], "data": [["pro", 1.0, 12], ["pro", 1.0, "X"]]},
        "tenure",
    ),
    "V2 tensors, a long": (
        PLANS_V2,
        {
            "inputs": [
                {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
                {"name": "usage", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "tenure", "shape": [1], "datatype": "INT64", "data": ["X"]},
            ]
        },
        "tenure",
    ),
    "v1 rows, a double": (PLANS, {"inputs": [{**PLAN_ROW, "usage": "X"}]}, "usage"),
}


@pytest.mark.parametrize("literal", ["9223372036854775808", "-9223372036854775809", "1" + "0" * 30])
@pytest.mark.parametrize("case", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_an_integer_past_int64_is_a_422_naming_the_field_and_row(
    server: str, case: tuple[str, Any, str], literal: str
) -> None:
    path, template, field = case
    answer = httpx.post(f"{server}{path}", content=_raw(template, "X", literal), headers=JSON)
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    expected_row = 1 if "columns" in template else 0
    assert (error["type"], error["field"], error["row"]) == ("InvalidField", field, expected_row)
    assert literal[:20] in error["message"]


def test_an_integer_past_int64_is_refused_on_invocations_and_a_matrix_too(
    server: str, row: dict[str, Any]
) -> None:
    """The all-numbers fast path (one float64 matrix) cannot see 2**63: a double column
    holds it as a float, but as a JSON integer it is refused like anywhere else."""
    marked = {**row, "mean_area": "X"}
    matrix = {"name": "input", "shape": [2, 30], "datatype": "FP64"}
    for path, template in [
        ("/invocations", {"dataframe_records": [row, marked]}),  # the only numeric model
        (V1, {"inputs": [row, marked]}),
        (V2, {"inputs": [{**matrix, "data": [*row.values(), *marked.values()]}]}),
    ]:
        answer = httpx.post(
            f"{server}{path}", content=_raw(template, "X", str(2**64)), headers=JSON
        )
        assert answer.status_code == 422, (path, answer.text)
        assert (error_of(answer)["field"], error_of(answer)["row"]) == ("mean_area", 1)
    # the same magnitude written as a decimal number is a fine double
    accepted = httpx.post(f"{server}{V1}", json={"inputs": [{**row, "mean_area": 1.8e19}]})
    assert accepted.status_code == 200, accepted.text


def test_the_edges_of_a_long_column_are_exact(server: str) -> None:
    """int64's own limits pass (the float64 matrix rounds 2**63 - 1 up to 2**63, so the
    check must look at the integers themselves); one past them does not."""
    for value, status in [(INT64_MAX, 200), (-(2**63), 200), (2**63, 422), (-(2**63) - 1, 422)]:
        answer = httpx.post(f"{server}{PLANS}", json={"inputs": [{**PLAN_ROW, "tenure": value}]})
        assert answer.status_code == status, (value, answer.text)
    # a float beyond int64 is no long either, whole or not
    answer = httpx.post(f"{server}{PLANS}", json={"inputs": [{**PLAN_ROW, "tenure": 1e19}]})
    assert answer.status_code == 422 and error_of(answer)["field"] == "tenure"


def test_an_integer_label_past_int64_is_a_422_naming_the_item(server: str) -> None:
    items = [{"request_id": "a1", "label": 1}, {"request_id": "a2", "label": "X"}]
    answer = httpx.post(f"{server}{FEEDBACK}", content=_raw(items, "X", str(2**64)), headers=JSON)
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert (error["type"], error["field"], error["row"]) == ("InvalidField", "label", 1)


# --- lone surrogates -------------------------------------------------------------------


def _surrogate_cases(row: dict[str, Any]) -> dict[str, tuple[str, bytes, str | None]]:
    """name -> (path, body with a lone surrogate, the field the error must name)."""
    lone = '"\\ud800"'
    tensors = {"inputs": _columns(row)}
    return {
        "an extra key": (V1, _raw({"inputs": [{**row, "X": 1}]}, "X", lone), "inputs[0]"),
        "a top-level key": (V1, _raw({"X": 1}, "X", lone), None),
        "a string value": (
            PLANS,
            _raw({"inputs": [{**PLAN_ROW, "plan": "X"}]}, "X", lone),
            "inputs[0].plan",
        ),
        "a V2 tensor name": (
            V2,
            _raw({"inputs": [{**_columns(row)[0], "name": "X"}]}, "X", lone),
            "inputs[0].name",
        ),
        "a V2 request id": (V2, _raw({**tensors, "id": "X"}, "X", lone), "id"),
        "a V2 output name": (
            V2,
            _raw({**tensors, "outputs": [{"name": "X"}]}, "X", lone),
            "outputs[0].name",
        ),
        "a feedback label": (
            FEEDBACK,
            _raw({"request_id": "r1", "label": "X"}, "X", lone),
            "label",
        ),
        "a feedback key": (
            FEEDBACK,
            _raw([{"request_id": "r1", "label": 1, "X": 2}], "X", '"\\udfffx"'),
            "[0]",
        ),
        "an MLflow column name": (
            "/invocations",
            _raw({"dataframe_split": {"columns": ["X"], "data": [[1]]}}, "X", lone),
            "dataframe_split.columns[0]",
        ),
    }


SURROGATE_CASES = list(_surrogate_cases({"mean_radius": 1.0}))


@pytest.mark.parametrize("name", SURROGATE_CASES)
def test_a_lone_surrogate_is_a_400_naming_where_it_is_and_the_connection_lives_on(
    server: str, row: dict[str, Any], name: str
) -> None:
    path, body, field = _surrogate_cases(row)[name]
    with httpx.Client(base_url=server, timeout=10.0) as client:
        answer = client.post(path, content=body, headers=JSON)
        assert answer.status_code == 400, answer.text
        error = error_of(answer)
        assert (error["type"], error["field"]) == ("MalformedRequest", field)
        assert "surrogate" in error["message"]
        after = client.post(V1, json={"inputs": [row]})  # the same connection
        assert after.status_code == 200, after.text


def test_a_surrogate_pair_is_text_and_passes(server: str) -> None:
    """An escaped pair is one character outside the BMP: valid Unicode, not refused."""
    body = _raw({"inputs": [{**PLAN_ROW, "plan": "X"}]}, "X", '"\\ud83d\\ude00"')
    answer = httpx.post(f"{server}{PLANS}", content=body, headers=JSON)
    assert answer.status_code == 422  # an unknown plan for the model, not a bad body
    assert error_of(answer)["type"] == "InvalidInput", answer.text
    assert "\U0001f600" in error_of(answer)["message"]


def _huge_name_cases(row: dict[str, Any], name: str) -> dict[str, tuple[str, bytes]]:
    """name -> (path, a body that quotes `name` back in its error message)."""
    tensors = _columns(row)
    return {
        "a repeated key": (V1, f'{{"{name}": 1, "{name}": 2}}'.encode()),
        "an unexpected top-level key": ("/invocations", _dumps({"inputs": [row], name: 1})),
        "a V2 tensor name": (V2, _dumps({"inputs": [{**tensors[0], "name": name}]})),
        "a V2 model name": (V2, _dumps({"inputs": tensors, "model_name": name})),
        "a V2 output": (V2, _dumps({"inputs": tensors, "outputs": [{"name": name}]})),
        "a deployment name": (f"/v1/deployments/{name}/predict", _dumps({"inputs": [row]})),
    }


HUGE_NAME_CASES = list(_huge_name_cases({"mean_radius": 1.0}, "x"))


@pytest.mark.parametrize("case", HUGE_NAME_CASES)
def test_a_huge_name_in_a_request_is_answered_at_once(
    server: str, row: dict[str, Any], case: str
) -> None:
    """A 60 KB key quoted whole into an error message cost ~6 s of the event loop (every
    message is scanned for secrets as it is made, in quadratic time for some shapes);
    messages quote at most 60 characters of what the client sent."""
    path, body = _huge_name_cases(row, "sk-" * 20_000)[case]
    started = time.monotonic()
    answer = httpx.post(f"{server}{path}", content=body, headers=JSON, timeout=30.0)
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert time.monotonic() - started < 2.0
    assert len(error_of(answer)["message"]) < 400


def test_a_v2_shape_of_huge_dimensions_is_a_422(server: str, row: dict[str, Any]) -> None:
    """Their product has thousands of digits: once a 500 (Python refuses to print an
    integer of more than 4,300 digits), and a long computation."""
    tensor = {**_columns(row)[0], "shape": [2**63] * 600}
    started = time.monotonic()
    answer = httpx.post(f"{server}{V2}", json={"inputs": [tensor]})
    assert answer.status_code == 422, answer.text[:300]
    assert error_of(answer)["field"] == "mean_radius"
    assert time.monotonic() - started < 2.0


# --- a 500 never costs the next request ------------------------------------------------


def test_a_500_closes_its_connection_so_the_next_request_on_it_works(
    project: ServingProject, row: dict[str, Any]
) -> None:
    from starlette.requests import Request
    from starlette.routing import Route

    async def fails(request: Request) -> None:  # a bug: any route that raises
        await request.body()
        raise RuntimeError("a bug")

    app = create_app({"default": load_served("churn/1", warm_up=False)})
    app.router.routes.append(Route("/fails", fails, methods=["POST"]))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10.0) as client:
        for _ in range(5):
            failed = client.post("/fails", json={"inputs": [row]})
            assert failed.status_code == 500
            assert failed.headers["connection"] == "close"
            assert "a bug" not in failed.text
            after = client.post(V1, json={"inputs": [row]})
            assert after.status_code == 200, after.text


# --- no server paths in HTTP bodies -----------------------------------------------------


def test_a_503_of_a_model_that_cannot_load_names_no_server_path(
    project: ServingProject, caplog: pytest.LogCaptureFixture
) -> None:
    import loopline as ll

    ll.models.log_model(Doubler(), name="doubler", input_example=project.features.head(5))
    app = create_app(lambda: {"doubler": load_served("doubler/1", warm_up=False)})
    with caplog.at_level(logging.ERROR, logger="loopline"), live_server(app, wait=False) as url:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            answers = _when_failed(client)
    bodies = [answer.text for answer in answers]
    assert [answer.status_code for answer in answers] == [503] * len(answers), bodies
    assert json.loads(bodies[0])["error"]["message"] == "the models failed to load (UnsafeModel)"
    for body in bodies:
        _assert_no_server_path(body, project.root)
    # the details (with the cache folder) are in the server's log
    assert "holds a pickle" in caplog.text and str(project.root) in caplog.text


def _when_failed(client: httpx.Client) -> list[httpx.Response]:
    """Once loading has failed: the answers of every endpoint that reports it."""
    eventually(
        lambda: "error" in client.get("/health/ready").json(),
        timeout=30,
        message="the load never failed",
    )
    rows = {"inputs": [{"mean_radius": 1.0}]}
    return [
        client.post("/v1/deployments/doubler/predict", json=rows),
        client.post("/invocations", json=rows),
        client.post("/v2/models/doubler/infer", json={"inputs": []}),
        client.get("/v2/models/doubler"),
        client.get("/health/ready"),
        client.get("/v2/health/ready"),
    ]


def _assert_no_server_path(body: str, root: Path) -> None:
    for folder in {str(root), str(root.resolve()), tempfile.gettempdir(), os.getcwd()}:
        assert folder not in body, body
    assert "/tmp" not in body and ".loopline" not in body and "cache" not in body, body


@pytest.mark.parametrize(
    "error",
    [
        NotFound("no model package at /srv/churn/.loopline/cache/models/ab12"),
        InvalidInput(f"cannot read {tempfile.gettempdir()}/my folder/x.parquet: denied"),
        InvalidPath("bad path", hint="see C:\\Users\\ml\\proj\\.loopline\\loopline.db"),
        InvalidInput("store postgresql+psycopg://ml:secret@db.internal/loopline is down"),
        InvalidInput("cannot open ~/proj/.loopline/loopline.db or .loopline/cache/x"),
    ],
    ids=["posix", "temp folder with a space", "windows hint", "store URI", "home and state"],
)
def test_error_bodies_name_no_server_path_but_keep_the_service_urls(error: Any) -> None:
    from loopline.serving.online._errors import error_body

    detail = error_body(error)["error"]
    text = json.dumps(detail)
    for leak in ("/srv", "ab12", "my folder", "Users", "secret", "db.internal", "proj", "cache"):
        assert leak not in text, text
    assert "<server path>" in text
    kept = error_body(InvalidInput("see /v2/models/churn", hint="retry when /health/ready is 200"))
    assert kept["error"]["message"] == "see /v2/models/churn"
    assert kept["error"]["hint"] == "retry when /health/ready is 200"


# --- the body timeout -------------------------------------------------------------------


STALLED = (
    b"POST /v1/deployments/default/predict HTTP/1.1\r\nHost: test\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"inputs":'
)


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _until_closed(
    sock: socket.socket, seconds: float, trickle: bool = False
) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and when it closed (seconds
    from now); with `trickle`, a body byte is sent every 0.2 s meanwhile."""
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < seconds:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
        elif trickle and not received:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.sendall(b" ")
    pytest.fail(f"the connection was still open after {seconds} s; received {received!r}")


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
def test_a_slow_body_is_answered_408_and_its_connection_closed(
    server: str, row: dict[str, Any], trickle: bool
) -> None:
    """With a 1 s body timeout: headers and 10 of 100 bytes, then nothing (or a byte every
    0.2 s, which no per-read timeout would catch); meanwhile others are served."""
    with _connect(server) as sock:
        sock.sendall(STALLED)
        started = time.monotonic()
        good = httpx.post(f"{server}{V1}", json={"inputs": [row]}, timeout=5.0)
        assert good.status_code == 200 and time.monotonic() - started < 0.9
        received, closed_after = _until_closed(sock, 6.0, trickle=trickle)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "RequestTimeout"
    assert 0.8 < closed_after < 3.0
    assert httpx.post(f"{server}{V1}", json={"inputs": [row]}).status_code == 200


def test_a_response_that_leaves_the_body_unread_closes_the_connection(server: str) -> None:
    """An answer before the body is read (here: no such deployment) must not leave the
    connection waiting for the rest of the body."""
    with _connect(server) as sock:
        sock.sendall(STALLED.replace(b"/default/", b"/nobody/"))
        received, closed_after = _until_closed(sock, 4.0)
    assert received.startswith(b"HTTP/1.1 404") and b"connection: close" in received.lower()
    assert closed_after < 0.9  # at once, not after the body timeout


def test_the_body_timeout_runs_under_the_servers_own_protocol() -> None:
    """The live servers above run `serve`'s HTTP protocol class: httptools when present."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from loopline.serving.online.server import no_delay_protocol

    assert issubclass(no_delay_protocol(), HttpToolsProtocol)


def test_the_body_timeout_is_an_option_of_serve_and_deploy_serve(project: ServingProject) -> None:
    from loopline.cli import _deploy, _serving
    from loopline.serving import serve

    for command in (_serving.serve, _deploy.serve):
        app = typer.Typer()
        app.command("serve")(command)
        app.command("other")(lambda: None)
        helped = CliRunner().invoke(app, ["serve", "--help"])
        assert helped.exit_code == 0 and "--body-timeout" in helped.output
    for seconds in (0, -1, 1e9):
        with pytest.raises(InvalidInput, match="body timeout"):
            serve("churn/1", body_timeout_seconds=seconds)  # refused before any worker starts
        with pytest.raises(InvalidInput, match="body timeout"):
            create_app(
                {"default": load_served("churn/1", warm_up=False)}, body_timeout_seconds=seconds
            )
