"""Clients of `mlflow models serve` work unchanged: the request bodies of MLflow's own
documentation (copied literally), CSV bodies as MLflow reads them, /ping, /health and
/version, `/invocations` with several deployments (`default=`), and fields that are not
model inputs dropped (as `model.predict` drops them) unless strict inputs are asked for.

Each test drives a live server on a real port, with httpx or a raw socket.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import numpy as np
import pandas as pd
import pytest

import loopline as ll
from fixtures.serving import ServingProject, live_server, open_serving_project
from fixtures.waiting import eventually
from loopline.errors import InvalidInput
from loopline.packaging import SignatureWarning
from loopline.serving import create_app, load_served
from loopline.serving import deployments as dep
from loopline.serving.online._stored import StoredDeployments

# The request bodies of MLflow's documentation ("Deploy MLflow Model as a Local Inference
# Server" and its REST API examples), byte for byte as the docs give them to curl.
DOCS_SPLIT = b"""{
  "dataframe_split": {
      "columns": ["a", "b", "c"],
      "data": [[1, 2, 3], [4, 5, 6]]
  }
}"""
DOCS_RECORDS = b"""{
  "dataframe_records": [
    {"a": 1,"b": 2,"c": 3},
    {"a": 4,"b": 5,"c": 6}
  ]
}"""
DOCS_INSTANCES = b"""{
    "instances": [
        {"a": 1, "b": 2, "c": 3},
        {"a": 4, "b": 5, "c": 6}
    ]
}"""
DOCS_INPUTS_COLUMNS = b"""{
    "inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}
}"""
DOCS_INPUTS_ARRAYS = b'{"inputs": [[1, 2], [3, 4], [5, 6]]}'
# what `pandas.DataFrame({"a": [1, 4], "b": [2, 5], "c": [3, 6]}).to_csv(index=False)` writes
DOCS_CSV = b"a,b,c\n1,2,3\n4,5,6\n"
JSON = {"Content-Type": "application/json"}
ABC = pd.DataFrame({"a": [1, 4], "b": [2, 5], "c": [3, 6]})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    """The serving project, plus abc/1 (a regression on a, b, c: longs) and pair/1 (a
    classifier on two doubles), the shapes of MLflow's documented examples."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    with open_serving_project(tmp_path_factory.mktemp("mlflow")) as opened:
        rng = np.random.default_rng(3)
        frame = pd.DataFrame(rng.integers(0, 10, (40, 3)), columns=["a", "b", "c"])
        target = frame["a"] * 2.0 + frame["b"] - frame["c"]
        ll.models.log_model(
            LinearRegression().fit(frame, target), name="abc", input_example=frame.head(3)
        )
        pair = pd.DataFrame(rng.normal(size=(40, 2)), columns=["x", "y"])
        label = (pair["x"] > pair["y"]).astype(int)
        ll.models.log_model(
            LogisticRegression().fit(pair, label), name="pair", input_example=pair.head(3)
        )
        yield opened


@pytest.fixture(scope="module")
def server(project: ServingProject) -> Iterator[str]:
    """abc, pair and plans on one server; /invocations answers for abc (`default=`)."""
    models = {name: load_served(f"{name}/1", warm_up=False) for name in ("abc", "pair", "plans")}
    with live_server(create_app(models, default="abc")) as url:
        yield url


def _expected(name: str, frame: pd.DataFrame) -> list[float]:
    return [float(v) for v in ll.models.load(f"{name}/1").predict(frame)]


@pytest.mark.parametrize(
    "body",
    [DOCS_SPLIT, DOCS_RECORDS, DOCS_INSTANCES, DOCS_INPUTS_COLUMNS],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_the_payloads_of_mlflows_docs_are_answered_as_mlflow_answers(
    server: str, body: bytes
) -> None:
    answer = httpx.post(f"{server}/invocations", content=body, headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert set(answer.json()) == {"predictions"}
    np.testing.assert_allclose(answer.json()["predictions"], _expected("abc", ABC))


def test_the_docs_array_payload_reaches_a_named_deployment(server: str) -> None:
    answer = httpx.post(
        f"{server}/v1/deployments/pair/invocations", content=DOCS_INPUTS_ARRAYS, headers=JSON
    )
    assert answer.status_code == 200, answer.text
    frame = pd.DataFrame([[1, 2], [3, 4], [5, 6]], columns=["x", "y"], dtype=float)
    assert answer.json() == {"predictions": [int(v) for v in _expected("pair", frame)]}


def _raw_post(base_url: str, path: str, body: bytes, content_type: str) -> tuple[int, str]:
    """An HTTP/1.1 POST written by hand, as `curl --data-binary @file` sends it."""
    host, port = base_url.removeprefix("http://").split(":")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: curl/8.5.0\r\n"
        f"Accept: */*\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10.0) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), payload.decode()


def test_csv_bodies_are_read_as_mlflow_reads_them(server: str) -> None:
    import json

    status, text = _raw_post(server, "/invocations", DOCS_CSV, "text/csv")
    assert status == 200, text
    np.testing.assert_allclose(json.loads(text)["predictions"], _expected("abc", ABC))
    # types come from the signature: a string, a nullable double left empty, a long
    csv = b"plan,usage,tenure\npro,,12\nbasic,9.5,3\n"
    status, text = _raw_post(
        server, "/v1/deployments/plans/invocations", csv, "text/csv; charset=utf-8"
    )
    assert status == 200, text
    frame = pd.read_csv(io.BytesIO(csv), dtype={"plan": str, "usage": float, "tenure": "int64"})
    assert json.loads(text)["predictions"] == [int(v) for v in _expected("plans", frame)]


def test_a_malformed_csv_body_is_a_400_json_error(server: str) -> None:
    status, text = _raw_post(server, "/invocations", b'a,b,c\n1,"2\n', "text/csv")
    assert status == 400, text
    assert '"MalformedRequest"' in text and "CSV" in text


def test_ping_health_and_version_answer_as_mlflows_scoring_server(server: str) -> None:
    for path in ("/ping", "/health"):
        answer = httpx.get(f"{server}{path}")
        assert (answer.status_code, answer.text) == (200, "\n")
    version = httpx.get(f"{server}/version")
    assert version.status_code == 200
    assert version.headers["content-type"].startswith("text/plain")
    assert version.text == ll.__version__


def test_invocations_with_two_deployments_needs_a_default(project: ServingProject) -> None:
    """It answered 404 "no deployment named 'default'" with no way to choose."""
    models = {name: load_served(f"{name}/1", warm_up=False) for name in ("abc", "pair")}
    with live_server(create_app(models)) as url:
        answer = httpx.post(f"{url}/invocations", content=DOCS_SPLIT, headers=JSON)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert "abc, pair" in error["message"] and "--default" in error["hint"]
        named = httpx.post(
            f"{url}/v1/deployments/abc/invocations", content=DOCS_SPLIT, headers=JSON
        )
        assert named.status_code == 200, named.text
    with pytest.raises(InvalidInput, match="nobody"):
        create_app(models, default="nobody")


def test_an_extra_field_is_dropped_and_named_like_python_predict_drops_it(
    server: str, project: ServingProject
) -> None:
    """HTTP answered 422 where `model.predict` drops the column with a warning."""
    wide = ABC.assign(colour=["red", "blue"], note=[1, 2])
    with pytest.warns(SignatureWarning):
        python = ll.models.load("abc/1").predict(wide)
    records = wide.to_dict(orient="records")
    for path, body in [
        ("/v1/deployments/abc/predict", {"inputs": records}),
        ("/invocations", {"dataframe_records": records}),
        ("/invocations", {"dataframe_split": wide.to_dict(orient="split", index=False)}),
        ("/invocations", {"inputs": wide.to_dict(orient="list")}),
    ]:
        answer = httpx.post(f"{server}{path}", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Dropped-Fields"] == "colour,note"
        np.testing.assert_allclose(answer.json()["predictions"], python)
    status, text = _raw_post(server, "/invocations", wide.to_csv(index=False).encode(), "text/csv")
    assert status == 200, text
    exact = httpx.post(f"{server}/invocations", json={"dataframe_records": ABC.to_dict("records")})
    assert "X-Dropped-Fields" not in exact.headers


def test_strict_inputs_keep_the_422_on_the_server_and_as_a_deployment_option(
    project: ServingProject,
) -> None:
    body = {"inputs": [{"a": 1, "b": 2, "c": 3, "colour": "red"}]}
    models = {"abc": load_served("abc/1", warm_up=False)}
    with live_server(create_app(models, strict_inputs=True)) as url:
        answer = httpx.post(f"{url}/v1/deployments/abc/predict", json=body)
        assert answer.status_code == 422
        assert (answer.json()["error"]["field"], answer.json()["error"]["row"]) == ("colour", 0)
    dep.create_deployment("strict-abc", "abc/1", strict_inputs=True)
    assert dep.get_deployment("strict-abc").spec.strict_inputs
    with live_server(create_app(StoredDeployments(["strict-abc"], poll_seconds=0.2))) as url:
        answer = httpx.post(f"{url}/v1/deployments/strict-abc/predict", json=body)
        assert answer.status_code == 422, answer.text
        dep.update_deployment("strict-abc", strict_inputs=False)
        # the server follows the new revision within a poll or two
        answer = eventually(
            lambda: httpx.post(f"{url}/v1/deployments/strict-abc/predict", json=body),
            until=lambda answer: answer.status_code == 200,
            timeout=10,
            interval=0.1,
            message="the server kept strict inputs",
        )
        assert unquote(answer.headers["X-Dropped-Fields"]) == "colour"


def test_the_cli_sets_strict_inputs_and_refuses_an_unknown_default(
    project: ServingProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.app import run as cli

    assert cli(["deploy", "create", "cli-abc", "--model", "abc/1", "--strict-inputs"]) == 0
    assert "fields that are not inputs: refused (422)" in capsys.readouterr().out
    assert cli(["deploy", "update", "cli-abc", "--lenient-inputs"]) == 0
    assert "dropped, named in X-Dropped-Fields" in capsys.readouterr().out
    assert not dep.get_deployment("cli-abc").spec.strict_inputs
    # checked before anything starts: no server, one line, exit 2
    assert cli(["deploy", "serve", "cli-abc", "--default", "nobody"]) == 2
    assert "--default 'nobody' is not one of the deployments served" in capsys.readouterr().err
