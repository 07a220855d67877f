"""The Open Inference Protocol's standard clients work unchanged against a live server:
Triton's `tritonclient.http` (binary tensors by default, and JSON) and KServe's
`InferenceRESTClient` (JSON and binary), on a classifier of 30 doubles and on a model
with a string column (BYTES). Their errors carry our message; malformed binary bodies
are 400s in the protocol's error shape, and nothing of them reaches the prediction log."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.serving import ServingProject, live_server, open_serving_project
from loopline.serving import create_app, load_served

CHURN, PLANS = "churn", "plans"
OCTET = "application/octet-stream"


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("v2")) as opened:
        yield opened


class Logged:
    """A sink that keeps the request ids that reached the prediction log."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.changed = threading.Condition()

    def __call__(self, item: Any) -> None:
        ids = getattr(item, "request_ids", None) or [item.request_id]
        with self.changed:
            self.ids.update(ids)
            self.changed.notify_all()

    def wait_for(self, request_id: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: request_id in self.ids, timeout=10)


@pytest.fixture(scope="module")
def logged() -> Logged:
    return Logged()


@pytest.fixture(scope="module")
def server(serving_project: ServingProject, logged: Logged) -> Iterator[str]:
    models = {
        CHURN: load_served("churn/1", warm_up=False),
        PLANS: load_served("plans/1", warm_up=False),
    }
    with live_server(create_app(models, sink=logged)) as url:
        yield url


@pytest.fixture(scope="module")
def triton(server: str) -> Iterator[Any]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.removeprefix("http://"))
    yield client
    client.close()


def _reference(server: str, deployment: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """loopline's own endpoint's answer for the same rows: what V2 must agree with."""
    answer = httpx.post(f"{server}/v1/deployments/{deployment}/predict", json={"inputs": rows})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _churn_matrix(project: ServingProject, count: int) -> np.ndarray[Any, Any]:
    return project.features.head(count).to_numpy(dtype=np.float64).copy()


def _plans_rows(project: ServingProject) -> list[dict[str, Any]]:
    frame = project.plans.head(8)  # row 0 has no usage (NaN): the column is nullable
    return [
        {"plan": plan, "usage": None if np.isnan(usage) else usage, "tenure": int(tenure)}
        for plan, usage, tenure in frame.itertuples(index=False)
    ]


# tritonclient ---------------------------------------------------------------------------


def _triton_inputs(
    matrix: np.ndarray[Any, Any], *, binary: bool, datatype: str = "FP64"
) -> list[Any]:
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput("input", list(matrix.shape), datatype)
    tensor.set_data_from_numpy(
        matrix.astype(np.float32 if datatype == "FP32" else np.float64), binary
    )
    return [tensor]


def test_tritonclient_infers_with_its_defaults_binary_in_and_out(
    triton: Any, server: str, serving_project: ServingProject
) -> None:
    matrix = _churn_matrix(serving_project, 5)
    result = triton.infer(CHURN, _triton_inputs(matrix, binary=True))
    expected = _reference(server, CHURN, serving_project.rows(5))
    labels, proba = result.as_numpy("predict"), result.as_numpy("predict_proba")
    assert labels.dtype == np.int64 and labels.tolist() == expected["predictions"]
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba, expected["probabilities"], rtol=1e-6)
    response = result.get_response()
    assert response["model_name"] == CHURN and response["model_version"] == "churn/1"
    assert all("binary_data_size" in output["parameters"] for output in response["outputs"])


def test_tritonclient_json_inputs_and_outputs_chosen_binary_or_not(
    triton: Any, server: str, serving_project: ServingProject
) -> None:
    import tritonclient.http as httpclient

    matrix = _churn_matrix(serving_project, 3)
    expected = _reference(server, CHURN, serving_project.rows(3))
    outputs = [
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
        httpclient.InferRequestedOutput("predict", binary_data=True),
    ]
    result = triton.infer(
        CHURN, _triton_inputs(matrix, binary=False), outputs=outputs, request_id="req-42"
    )
    response = result.get_response()
    assert response["id"] == "req-42"
    assert [output["name"] for output in response["outputs"]] == ["predict_proba", "predict"]
    assert "data" in response["outputs"][0] and "data" not in response["outputs"][1]
    assert result.as_numpy("predict").tolist() == expected["predictions"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["probabilities"])
    # every output in JSON: an ordinary JSON response
    json_only = [httpclient.InferRequestedOutput("predict", binary_data=False)]
    plain = triton.infer(CHURN, _triton_inputs(matrix, binary=True), outputs=json_only)
    assert plain.as_numpy("predict").tolist() == expected["predictions"]
    assert [output["name"] for output in plain.get_response()["outputs"]] == ["predict"]


def test_tritonclient_fp32_tensors_give_the_fp32_rows_answer(
    triton: Any, server: str, serving_project: ServingProject
) -> None:
    matrix = _churn_matrix(serving_project, 4).astype(np.float32)
    result = triton.infer(CHURN, _triton_inputs(matrix, binary=True, datatype="FP32"))
    names = serving_project.features.columns
    rows = [dict(zip(names, map(float, row), strict=True)) for row in matrix]
    assert result.as_numpy("predict").tolist() == _reference(server, CHURN, rows)["predictions"]


def _plans_triton_inputs(rows: list[dict[str, Any]], *, binary: bool) -> list[Any]:
    import tritonclient.http as httpclient

    n = len(rows)
    columns = {
        "plan": ("BYTES", np.array([row["plan"] for row in rows], dtype=np.object_)),
        "usage": (
            "FP64",
            np.array([np.nan if row["usage"] is None else row["usage"] for row in rows]),
        ),
        "tenure": ("INT64", np.array([row["tenure"] for row in rows], dtype=np.int64)),
    }
    tensors = []
    for name, (datatype, values) in columns.items():
        tensor = httpclient.InferInput(name, [n], datatype)
        tensor.set_data_from_numpy(values, binary)
        tensors.append(tensor)
    return tensors


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_sends_a_string_column_as_bytes(
    triton: Any, server: str, serving_project: ServingProject, binary: bool
) -> None:
    rows = _plans_rows(serving_project)
    if not binary:  # JSON has no NaN: a missing usage is sent as a number in JSON mode
        rows = [{**row, "usage": row["usage"] or 1.0} for row in rows]
    result = triton.infer(PLANS, _plans_triton_inputs(rows, binary=binary))
    expected = _reference(server, PLANS, rows)
    assert result.as_numpy("predict").tolist() == expected["predictions"]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["probabilities"])


def test_tritonclient_health_readiness_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(CHURN) and not triton.is_model_ready("nobody")
    metadata = triton.get_model_metadata(PLANS)
    assert metadata["name"] == PLANS
    assert {(t["name"], t["datatype"]) for t in metadata["inputs"]} == {
        ("plan", "BYTES"),
        ("usage", "FP64"),
        ("tenure", "INT64"),
    }
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]


def test_tritonclient_names_the_served_version_or_gets_a_404(
    triton: Any, server: str, serving_project: ServingProject
) -> None:
    from tritonclient.utils import InferenceServerException

    matrix = _churn_matrix(serving_project, 2)
    result = triton.infer(CHURN, _triton_inputs(matrix, binary=True), model_version="1")
    assert (
        result.as_numpy("predict").tolist()
        == _reference(server, CHURN, serving_project.rows(2))["predictions"]
    )
    assert triton.get_model_metadata(CHURN, model_version="1")["name"] == CHURN
    assert triton.is_model_ready(CHURN, model_version="1")
    assert not triton.is_model_ready(CHURN, model_version="7")
    with pytest.raises(InferenceServerException) as other:
        triton.infer(CHURN, _triton_inputs(matrix, binary=True), model_version="7")
    assert other.value.status() == "404"
    assert "serves churn/1, not version '7'" in other.value.message()


def test_tritonclient_raises_its_exception_with_our_message(
    triton: Any, serving_project: ServingProject
) -> None:
    from tritonclient.utils import InferenceServerException

    matrix = _churn_matrix(serving_project, 2)
    with pytest.raises(InferenceServerException) as unknown:
        triton.infer("nobody", _triton_inputs(matrix, binary=True))
    assert unknown.value.status() == "404"
    assert "no deployment named 'nobody'" in unknown.value.message()
    matrix[1, 3] = np.nan  # NaN in binary FP64 is refused as the JSON path refuses it
    with pytest.raises(InferenceServerException) as nan:
        triton.infer(CHURN, _triton_inputs(matrix, binary=True))
    assert nan.value.status() == "422" and "NaN" in nan.value.message()
    with pytest.raises(InferenceServerException) as metadata:
        triton.get_model_metadata("nobody")
    assert "no deployment named 'nobody'" in metadata.value.message()


def test_tritonclient_infinity_in_fp32_binary_data_is_refused(
    triton: Any, serving_project: ServingProject
) -> None:
    from tritonclient.utils import InferenceServerException

    matrix = _churn_matrix(serving_project, 2).astype(np.float32)
    matrix[0, 0] = np.inf
    with pytest.raises(InferenceServerException) as refused:
        triton.infer(CHURN, _triton_inputs(matrix, binary=True, datatype="FP32"))
    assert refused.value.status() == "422" and "infinite" in refused.value.message()


def test_tritonclient_bytes_for_a_number_column_is_refused(triton: Any) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    rows = [{"plan": "pro", "usage": 3.0, "tenure": 5}]
    tensors = _plans_triton_inputs(rows, binary=True)
    tenure = httpclient.InferInput("tenure", [1], "BYTES")
    tenure.set_data_from_numpy(np.array([b"5"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as refused:
        triton.infer(PLANS, [*tensors[:2], tenure])
    assert refused.value.status() == "422"
    assert "'tenure' has datatype BYTES" in refused.value.message()


# KServe -------------------------------------------------------------------------------


def _kserve_infer(server: str, request: Any) -> Any:
    from kserve import InferenceRESTClient, RESTConfig

    async def infer() -> Any:
        async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
            return await client.infer(server, request, model_name=request.model_name)

    return asyncio.run(infer())


def _kserve_request(deployment: str, columns: dict[str, Any], *, binary: bool) -> Any:
    from kserve import InferInput, InferRequest

    inputs = []
    for name, (datatype, values) in columns.items():
        tensor = InferInput(name=name, shape=[len(values)], datatype=datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return InferRequest(model_name=deployment, infer_inputs=inputs, request_id="kserve-1")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_client_infers_on_the_classifier(
    server: str, serving_project: ServingProject, binary: bool
) -> None:
    frame = serving_project.features.head(4)
    columns = {name: ("FP64", frame[name].to_numpy()) for name in frame.columns}
    response = _kserve_infer(server, _kserve_request(CHURN, columns, binary=binary))
    expected = _reference(server, CHURN, serving_project.rows(4))
    outputs = {output.name: output.as_numpy() for output in response.outputs}
    assert response.id == "kserve-1" and response.model_name == CHURN
    assert outputs["predict"].tolist() == expected["predictions"]
    np.testing.assert_allclose(outputs["predict_proba"], expected["probabilities"])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_client_infers_with_a_string_column(
    server: str, serving_project: ServingProject, binary: bool
) -> None:
    rows = [{**row, "usage": row["usage"] or 2.5} for row in _plans_rows(serving_project)]
    columns = {
        "plan": ("BYTES", np.array([row["plan"] for row in rows], dtype=np.object_)),
        "usage": ("FP64", np.array([row["usage"] for row in rows])),
        "tenure": ("INT64", np.array([row["tenure"] for row in rows], dtype=np.int64)),
    }
    response = _kserve_infer(server, _kserve_request(PLANS, columns, binary=binary))
    outputs = {output.name: output.as_numpy() for output in response.outputs}
    assert outputs["predict"].tolist() == _reference(server, PLANS, rows)["predictions"]


def test_kserve_client_health_and_readiness(server: str) -> None:
    from kserve import InferenceRESTClient, RESTConfig

    async def ask() -> tuple[bool, bool, bool, bool]:
        async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
            return (
                await client.is_server_live(server),
                await client.is_server_ready(server),
                await client.is_model_ready(server, PLANS),
                await client.is_model_ready(server, "nobody"),
            )

    assert asyncio.run(ask()) == (True, True, True, False)


def test_kserve_client_error_carries_our_message(server: str) -> None:
    columns = {"plan": ("BYTES", np.array(["pro"], dtype=np.object_))}
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        _kserve_infer(server, _kserve_request("nobody", columns, binary=True))
    assert "no deployment named 'nobody'" in str(unknown.value)
    with pytest.raises(httpx.HTTPStatusError) as missing:
        _kserve_infer(server, _kserve_request(PLANS, columns, binary=False))
    assert "input tensor 'usage' (double) is missing" in str(missing.value)
    assert missing.value.response.status_code == 422


# malformed bodies, by hand ---------------------------------------------------------------


def _framed(header: dict[str, Any], data: bytes) -> tuple[bytes, str]:
    """A body and its Inference-Header-Content-Length value."""
    body, length = _binary_body(header, data)
    return body, str(length)


def _binary_body(header: dict[str, Any], data: bytes) -> tuple[bytes, int]:
    text = json.dumps(header).encode()
    return text + data, len(text)


def _one_plan(size: int | None = None, **tenure: Any) -> dict[str, Any]:
    """A plans request whose `tenure` (one INT64) is sent in binary."""
    tenure_tensor = {"name": "tenure", "shape": [1], "datatype": "INT64"}
    tenure_tensor["parameters"] = {"binary_data_size": 8 if size is None else size}
    tenure_tensor.update(tenure)
    return {
        "inputs": [
            {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
            {"name": "usage", "shape": [1], "datatype": "FP64", "data": [3.5]},
            tenure_tensor,
        ]
    }


TENURE = struct.pack("<q", 12)
BAD_BODIES: dict[str, tuple[bytes, str, str]] = {
    # name: (body, Inference-Header-Content-Length, a phrase of the message)
    "a size that is not the shape's": (
        *_framed(_one_plan(4), TENURE[:4]),
        "take 8 bytes",
    ),
    "a size past the data": (
        *_framed(_one_plan(16), TENURE),
        "only 8 bytes",
    ),
    "bytes left over": (
        *_framed(_one_plan(), TENURE + b"\0"),
        "do not add up",
    ),
    "a header length past the body": (_binary_body(_one_plan(), TENURE)[0], "100000", "holds only"),
    "a negative header length": (_binary_body(_one_plan(), TENURE)[0], "-5", "whole number"),
    "a header length that is not a number": (
        _binary_body(_one_plan(), TENURE)[0],
        "12.5",
        "whole number",
    ),
    "a header cut inside the JSON": (_binary_body(_one_plan(), TENURE)[0], "20", "invalid JSON"),
    "a negative binary_data_size": (
        *_framed(_one_plan(-8), TENURE),
        "non-negative integer",
    ),
    "both data and binary_data_size": (
        *_framed(_one_plan(data=[12]), TENURE),
        "both 'data' and binary_data_size",
    ),
}


def _bytes_plan(chunk: bytes) -> tuple[bytes, str]:
    request = _one_plan(data=[12])
    request["inputs"][2].pop("parameters")
    request["inputs"][0] = {
        "name": "plan",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(chunk)},
    }
    body, length = _binary_body(request, chunk)
    return body, str(length)


BAD_BODIES.update(
    {
        "a BYTES length past its data": (
            *_bytes_plan(struct.pack("<I", 9) + b"pro"),
            "past the end",
        ),
        "a BYTES element not UTF-8": (*_bytes_plan(struct.pack("<I", 2) + b"\xff\xfe"), "UTF-8"),
        "BYTES of two elements for one": (
            *_bytes_plan((struct.pack("<I", 3) + b"pro") * 2),
            "2 elements",
        ),
        "stray bytes after a BYTES element": (
            *_bytes_plan(struct.pack("<I", 3) + b"pro\x01"),
            "stray bytes",
        ),
    }
)


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_malformed_binary_body_is_a_400_in_the_protocols_shape_and_never_logged(
    server: str, logged: Logged, case: str
) -> None:
    body, length, says = BAD_BODIES[case]
    headers = {"Inference-Header-Content-Length": length, "Content-Type": OCTET}
    answer = httpx.post(f"{server}/v2/models/{PLANS}/infer", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert type(error["error"]) is str and says in error["error"], error
    assert error["type"] == "MalformedRequest"
    # the server still answers, and the bad request never reached the prediction log
    good, length = _binary_body(_one_plan(), TENURE)
    fine = httpx.post(
        f"{server}/v2/models/{PLANS}/infer",
        content=good,
        headers={"Inference-Header-Content-Length": str(length)},
    )
    assert fine.status_code == 200, fine.text
    logged.wait_for(fine.headers["x-request-id"])
    assert answer.headers["x-request-id"] not in logged.ids


def test_a_binary_body_answers_as_its_json_twin(server: str) -> None:
    body, length = _binary_body(_one_plan(), TENURE)
    binary = httpx.post(
        f"{server}/v2/models/{PLANS}/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(length)},
    )
    twin = _one_plan(data=[12])
    twin["inputs"][2].pop("parameters")
    plain = httpx.post(f"{server}/v2/models/{PLANS}/infer", json=twin)
    assert binary.status_code == plain.status_code == 200
    assert binary.headers["content-type"] == "application/json"  # no binary output asked
    assert binary.json()["outputs"] == plain.json()["outputs"]


def test_binary_outputs_are_framed_as_the_extension_says(server: str) -> None:
    request = _one_plan(data=[12])
    request["inputs"][2].pop("parameters")
    request["parameters"] = {"binary_data_output": True}
    answer = httpx.post(f"{server}/v2/models/{PLANS}/infer", json=request)
    assert answer.status_code == 200 and answer.headers["content-type"] == OCTET
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    data = answer.content[length:]
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert [output["name"] for output in header["outputs"]] == ["predict", "predict_proba"]
    assert sizes == [8, 16] and len(data) == 24  # one INT64 label, two FP64 probabilities
    label = struct.unpack("<q", data[:8])[0]
    proba = struct.unpack("<2d", data[8:])
    assert label in (0, 1) and proba[label] == max(proba)
    assert abs(sum(proba) - 1.0) < 1e-12


def _post(server: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{server}/v2/models/{PLANS}/infer", json=body, headers=headers)


def test_fields_the_protocol_allows_are_accepted(server: str) -> None:
    request = _one_plan(data=[12])
    request["inputs"][2]["parameters"] = {"content_type": "np"}
    request.update(
        id="mine",
        model_name=PLANS,
        model_version="1",
        parameters={"priority": 1, "timeout": 5},
        outputs=[{"name": "predict", "parameters": {"binary_data": False}}],
        something_new={"ignored": True},
    )
    answer = _post(server, request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "mine"
    assert [output["name"] for output in answer.json()["outputs"]] == ["predict"]
    assert _post(server, {**request, "model_version": "plans/1"}).status_code == 200


def _plain_plan() -> dict[str, Any]:
    request = _one_plan(data=[12])
    request["inputs"][2].pop("parameters")
    return request


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"model_name": CHURN}, 400, "names model 'churn'"),
        ({"model_name": 7}, 400, "names model 7"),
        ({"model_version": "2"}, 400, "serves plans/1"),
        ({"parameters": [1]}, 422, "must be an object"),
        ({"parameters": {"binary_data_output": "yes"}}, 422, "true or false"),
        ({"outputs": [{"name": "predict", "parameters": {"binary_data": 1}}]}, 422, "true or"),
        ({"outputs": [{"name": "predict", "parameters": {"classification": 2}}]}, 422, "support"),
        ({"id": 5}, 422, "'id' must be a string"),
    ],
)
def test_a_field_of_the_wrong_kind_is_refused_in_the_protocols_shape(
    server: str, change: dict[str, Any], status: int, says: str
) -> None:
    answer = _post(server, {**_plain_plan(), **change})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_a_missing_content_type_is_json_and_other_types_are_refused(server: str) -> None:
    body = json.dumps(_plain_plan()).encode()
    url = f"{server}/v2/models/{PLANS}/infer"
    assert httpx.post(url, content=body).status_code == 200
    refused = httpx.post(url, content=body, headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415 and "JSON" in refused.json()["error"]
    gzip = httpx.post(url, content=body, headers={"Content-Encoding": "gzip"})
    assert gzip.status_code == 415 and "gzip" in gzip.json()["error"]
    binary_without_header = _one_plan()
    bare = httpx.post(url, content=json.dumps(binary_without_header).encode() + TENURE)
    assert bare.status_code == 400


def test_errors_on_v2_routes_take_the_protocols_shape_and_others_keep_ours(server: str) -> None:
    for answer in (
        httpx.get(f"{server}/v2/models/nobody"),
        httpx.get(f"{server}/v2/nothing/here"),
        httpx.get(f"{server}/v2/models/{PLANS}/infer"),  # wrong method
        httpx.post(f"{server}/v2/models/nobody/infer", json=_plain_plan()),
    ):
        assert answer.status_code in (404, 405)
        error = answer.json()
        assert type(error["error"]) is str and error["error"], error
        assert int(answer.headers["content-length"]) == len(answer.content)
    ours = httpx.get(f"{server}/v1/deployments/nobody/nothing").json()
    assert ours["error"]["type"] == "NotFound"
    not_ready = httpx.get(f"{server}/v2/models/nobody/ready")
    assert not_ready.status_code == 404 and "nobody" in not_ready.json()["error"]


SIZES = st.one_of(st.none(), st.integers(-4, 40), st.text(max_size=3), st.floats(), st.booleans())
HEADER_LENGTHS = st.one_of(
    st.integers(-5, 600).map(str),
    st.text(st.characters(min_codepoint=32, max_codepoint=126)).filter(
        lambda text: text == text.strip()  # what HTTP lets a header value be
    ),
)


@settings(max_examples=150, database=None)
@given(
    length=st.one_of(st.none(), HEADER_LENGTHS),
    sizes=st.lists(SIZES, min_size=3, max_size=3),
    datatypes=st.lists(st.sampled_from(["BYTES", "FP32", "INT64", "BOOL", "FP16"]), min_size=3),
    shape=st.lists(st.integers(0, 3), min_size=1, max_size=2),
    tail=st.binary(max_size=64),
)
def test_hostile_binary_framing_is_never_a_5xx_and_errors_keep_the_protocols_shape(
    server: str,
    length: str | None,
    sizes: list[Any],
    datatypes: list[str],
    shape: list[int],
    tail: bytes,
) -> None:
    tensors = []
    for name, size, datatype in zip(["plan", "usage", "tenure"], sizes, datatypes, strict=False):
        tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if size is None:
            tensor["data"] = [1] * int(np.prod(shape))
        else:
            tensor["parameters"] = {"binary_data_size": size}
        tensors.append(tensor)
    header = json.dumps({"inputs": tensors}).encode()
    headers = {"Content-Type": OCTET}
    headers["Inference-Header-Content-Length"] = str(len(header)) if length is None else length
    with httpx.Client(base_url=server, timeout=10.0) as client:
        answer = client.post(f"/v2/models/{PLANS}/infer", content=header + tail, headers=headers)
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert type(answer.json()["error"]) is str, answer.text
        after = client.post(f"/v2/models/{PLANS}/infer", json=_plain_plan())
        assert after.status_code == 200, after.text
