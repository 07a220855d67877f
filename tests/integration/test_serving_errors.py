"""Bad requests get a 4xx JSON error that says what is wrong (naming the field and row
where there is one), and the server keeps serving: the catalogue, case by case."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures.serving import ServingProject, error_of, live_server, open_serving_project
from loopline.serving import create_app, load_served

V1 = "/v1/deployments/default/predict"
PLANS = "/v1/deployments/plans/predict"
V2 = "/v2/models/default/infer"
JSON = {"Content-Type": "application/json"}
PLAN_ROW = {"plan": "pro", "usage": 9.5, "tenure": 12}


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("serving")) as opened:
        yield opened


@pytest.fixture(scope="module")
def server(serving_project: ServingProject) -> Iterator[str]:
    models = {
        "default": load_served("churn/1", warm_up=False),
        "plans": load_served("plans/1", warm_up=False),
    }
    # strict inputs: an extra field is refused here (by default it is dropped and named in
    # X-Dropped-Fields, see test_mlflow_clients.py)
    with live_server(create_app(models, max_body_bytes=100_000, strict_inputs=True)) as url:
        yield url


@pytest.fixture(scope="module")
def row(serving_project: ServingProject) -> dict[str, Any]:
    return serving_project.rows(1)[0]


@dataclass(frozen=True)
class Case:
    """A request built from a valid churn row, and the error it must get."""

    path: str
    body: Callable[[dict[str, Any]], Any]  # row -> JSON value, or bytes sent as they are
    status: int
    type: str
    field: str | None = None
    row: int | None = None
    content_type: str | None = "application/json"
    says: str = ""  # a phrase the message must contain


def _with(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**row, **changes}


def _without(row: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != name}


def _raw(row: dict[str, Any], name: str, literal: str) -> bytes:
    """A one-row body whose `name` value is the raw JSON text `literal`."""
    text = json.dumps({"inputs": [_with(row, **{name: 0.0})]})
    return text.replace(f'"{name}": 0.0', f'"{name}": {literal}').encode()


def _csv(row: dict[str, Any], *, drop: str = "", rows: int = 1, **changes: Any) -> bytes:
    """`row` as a CSV body (header, then `rows` copies), `drop` left out, `changes` made."""
    fields = {key: value for key, value in {**row, **changes}.items() if key != drop}
    lines = [",".join(fields)] + [",".join(map(str, fields.values()))] * rows
    return ("\n".join(lines) + "\n").encode()


def _tensors(row: dict[str, Any], **override: Any) -> dict[str, Any]:
    tensors = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in row.items()
    ]
    tensors[0].update(override)
    return {"inputs": tensors}


def _twice(row: dict[str, Any]) -> bytes:
    text = json.dumps({"inputs": [row]})
    return text.replace('"mean_texture"', '"mean_radius"', 1).encode()


def _inputs(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": list(rows)}


FIELD, INPUT, BAD_JSON = "InvalidField", "InvalidInput", "MalformedRequest"
BAD, MEDIA, CSV = BAD_JSON, "UnsupportedMediaType", "text/csv"
WIDE = {"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
CASES = {
    # size and media type, checked before any parsing
    "a body over the limit": Case(V1, lambda r: b" " * 200_000, 413, "PayloadTooLarge"),
    "text/plain": Case(V1, _inputs, 415, "UnsupportedMediaType", content_type="text/plain"),
    "a form": Case(
        V1, lambda r: b"a=1", 415, "UnsupportedMediaType", content_type="multipart/form-data"
    ),
    "a pickle": Case(
        V1,
        lambda r: pickle.dumps(_inputs(r)),
        415,
        "UnsupportedMediaType",
        content_type="application/octet-stream",
    ),
    "no content type": Case(V1, _inputs, 415, "UnsupportedMediaType", content_type=None),
    # the JSON itself
    "invalid JSON": Case(V1, lambda r: b'{"inputs": [', 400, BAD_JSON, says="invalid JSON"),
    "invalid UTF-8": Case(
        V1, lambda r: b'{"inputs": [{"mean_radius": "\xff"}]}', 400, BAD_JSON, says="UTF-8"
    ),
    "a duplicate key": Case(V1, _twice, 400, BAD_JSON, says="'mean_radius' appears twice"),
    "nesting 40 deep": Case(
        V1, lambda r: b'{"inputs": ' + b"[" * 40 + b"]" * 40 + b"}", 400, BAD_JSON, says="32"
    ),
    "an empty body": Case(V1, lambda r: b"", 400, BAD_JSON),
    # names the server does not know
    "an unknown deployment": Case(
        "/v1/deployments/nobody/predict", _inputs, 404, "NotFound", says="nobody"
    ),
    "an unknown V2 model": Case("/v2/models/nobody/infer", _tensors, 404, "NotFound"),
    # the payload's shape
    "no inputs key": Case(V1, lambda r: {"rows": [r]}, 422, INPUT),
    "inputs not a list": Case(V1, lambda r: {"inputs": 5}, 422, INPUT),
    "no rows": Case(V1, lambda r: {"inputs": []}, 422, INPUT, says="no rows"),
    "a top-level array": Case(V1, lambda r: [r], 422, INPUT),
    "rows as arrays": Case(V1, lambda r: {"inputs": [list(r.values())]}, 422, INPUT),
    "columns without data": Case(V1, lambda r: {"columns": list(r)}, 422, INPUT),
    # fields against the signature
    "a missing field": Case(
        V1, lambda r: _inputs(r, _without(r, "worst_area")), 422, FIELD, "worst_area", 1
    ),
    "an extra field": Case(V1, lambda r: _inputs(_with(r, colour="red")), 422, FIELD, "colour", 0),
    "a string for a number": Case(
        V1, lambda r: _inputs(_with(r, mean_radius="12.5")), 422, FIELD, "mean_radius", 0
    ),
    "a boolean for a number": Case(
        V1, lambda r: _inputs(r, r, _with(r, mean_area=True)), 422, FIELD, "mean_area", 2
    ),
    "null where not nullable": Case(
        V1, lambda r: _inputs(_with(r, mean_radius=None)), 422, FIELD, "mean_radius", 0
    ),
    "a NaN literal": Case(
        V1, lambda r: _raw(r, "mean_texture", "NaN"), 422, FIELD, "mean_texture", 0, says="NaN"
    ),
    "an Infinity literal": Case(
        V1, lambda r: _raw(r, "mean_texture", "-Infinity"), 422, FIELD, "mean_texture", 0
    ),
    "a number beyond a double": Case(
        V1, lambda r: _raw(r, "mean_texture", "1e999"), 422, FIELD, "mean_texture", 0
    ),
    "an integer beyond a double": Case(
        V1, lambda r: _raw(r, "mean_texture", "9" * 400), 422, FIELD, "mean_texture", 0
    ),
    "columnar without a column": Case(
        V1,
        lambda r: {"columns": list(r)[1:], "data": [list(r.values())[1:]]},
        422,
        FIELD,
        "mean_radius",
    ),
    "a number for a string": Case(
        PLANS, lambda r: _inputs(_with(PLAN_ROW, plan=3)), 422, FIELD, "plan", 0
    ),
    "a fraction for a long": Case(
        PLANS, lambda r: _inputs(_with(PLAN_ROW, tenure=2.5)), 422, FIELD, "tenure", 0
    ),
    "infinity where nullable": Case(
        PLANS, lambda r: _raw(PLAN_ROW, "usage", "Infinity"), 422, FIELD, "usage", 0
    ),
    "a value the model refuses": Case(
        PLANS, lambda r: _inputs(PLAN_ROW, _with(PLAN_ROW, plan="gold")), 422, INPUT, says="gold"
    ),
    # the Open Inference Protocol
    "an unknown datatype": Case(
        V2, lambda r: _tensors(r, datatype="FLOAT"), 422, FIELD, "mean_radius"
    ),
    "a shape that is not the data's": Case(
        V2, lambda r: _tensors(r, shape=[2]), 422, FIELD, "mean_radius"
    ),
    "a BYTES tensor for a number": Case(
        V2, lambda r: _tensors(r, datatype="BYTES"), 422, FIELD, "mean_radius"
    ),
    "a string in a tensor": Case(
        V2, lambda r: _tensors(r, data=["big"]), 422, FIELD, "mean_radius", 0
    ),
    "a missing tensor": Case(
        V2, lambda r: {"inputs": _tensors(r)["inputs"][1:]}, 422, FIELD, "mean_radius"
    ),
    "a tensor that is no input": Case(
        V2, lambda r: _tensors(r, name="colour"), 422, FIELD, "colour"
    ),
    "a matrix of the wrong width": Case(V2, lambda r: {"inputs": [WIDE]}, 422, FIELD, "input"),
    "an unknown output": Case(
        V2, lambda r: {**_tensors(r), "outputs": [{"name": "explain"}]}, 422, FIELD, "outputs"
    ),
    # MLflow's payloads
    "two MLflow formats": Case(
        "/invocations", lambda r: {"instances": [r], "inputs": [r]}, 422, INPUT, says="one"
    ),
    "MLflow params": Case(
        "/invocations", lambda r: {**_inputs(r), "params": {"k": 3}}, 422, INPUT, says="params"
    ),
    "MLflow split without columns": Case(
        "/invocations", lambda r: {"dataframe_split": {"data": [list(r.values())]}}, 422, INPUT
    ),
    # MLflow's CSV bodies
    "CSV with more values than the header": Case(
        "/invocations", lambda r: b"a,b\n1,2,3,4\n", 400, BAD, content_type=CSV, says="CSV"
    ),
    "CSV with one more value per row": Case(
        "/invocations", lambda r: b"a,b\n1,2,3\n", 400, BAD, content_type=CSV, says="more"
    ),
    "CSV header naming a column twice": Case(
        "/invocations",
        lambda r: b"mean_radius," + _csv(r),
        400,
        BAD,
        content_type=CSV,
        says="twice",
    ),
    "CSV not UTF-8": Case("/invocations", lambda r: b"\xff\xfe,a", 400, BAD, content_type=CSV),
    "CSV empty": Case("/invocations", lambda r: b"\n", 400, BAD, content_type=CSV),
    "CSV in another charset": Case(
        "/invocations", _csv, 415, MEDIA, content_type="text/csv; charset=latin-1"
    ),
    "CSV text in a number column": Case(
        "/invocations", lambda r: _csv(r, mean_area="big"), 400, BAD, content_type=CSV
    ),
    "CSV without a column": Case(
        "/invocations", lambda r: _csv(r, drop="worst_area"), 422, FIELD, "worst_area", None, CSV
    ),
    "CSV with an extra column": Case(
        "/invocations", lambda r: _csv(r, colour="red"), 422, FIELD, "colour", None, CSV
    ),
    "CSV header without rows": Case(
        "/invocations", lambda r: _csv(r, rows=0), 422, INPUT, content_type=CSV, says="no rows"
    ),
    "CSV on loopline's endpoint": Case(V1, _csv, 415, MEDIA, content_type=CSV),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_request_gets_its_error_and_the_server_keeps_serving(
    server: str, row: dict[str, Any], case: Case
) -> None:
    body = case.body(row)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(base_url=server, timeout=10.0) as client:
        headers = {} if case.content_type is None else {"Content-Type": case.content_type}
        answer = client.post(case.path, content=content, headers=headers)
        assert answer.status_code == case.status, answer.text
        assert answer.headers["content-type"] == "application/json"
        error = error_of(answer)
        assert set(error) >= {"type", "message", "hint", "field"}
        assert (error["type"], error["field"], error.get("row")) == (
            case.type,
            case.field,
            case.row,
        )
        assert case.says in error["message"]
        assert answer.headers["X-Request-Id"]
    with httpx.Client(base_url=server, timeout=10.0) as client:
        after = client.post(V1, json={"inputs": [row]})
        assert after.status_code == 200, after.text


def test_a_streamed_body_over_the_limit_is_refused_while_streaming(
    server: str, row: dict[str, Any]
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"inputs": ['
        for _ in range(200):
            yield json.dumps(row).encode() + b","
        yield b"]}"

    answer = httpx.post(f"{server}{V1}", content=chunks(), headers=JSON)
    assert answer.status_code == 413
    assert error_of(answer)["type"] == "PayloadTooLarge"
    assert httpx.post(f"{server}{V1}", json={"inputs": [row]}).status_code == 200


def test_an_unknown_route_and_a_wrong_method_are_json_errors(server: str) -> None:
    missing = httpx.get(f"{server}/v3/everything")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    wrong = httpx.get(f"{server}{V1}")
    assert wrong.status_code == 405 and "error" in wrong.json()
    assert error_of(httpx.get(f"{server}/v2/models/nobody"))["type"] == "NotFound"
