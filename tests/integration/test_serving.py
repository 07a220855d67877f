"""The prediction service end to end: real servers on real ports, driven with httpx.

Models come from `serving_project` (tests/fixtures/serving.py): churn/1 (a scaled
LogisticRegression on breast_cancer), churn/2 (its ONNX export) and plans/1 (string,
nullable and long inputs).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import loopline as ll
from fixtures.serving import ServingProject, live_server, open_serving_project, wait_ready
from fixtures.waiting import eventually
from loopline.errors import InvalidInput, NotFound
from loopline.serving import PredictionRecord, create_app, load_served

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def serving_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("serving")) as opened:
        yield opened


@pytest.fixture(scope="module")
def server(serving_project: ServingProject) -> Iterator[str]:
    """churn (ONNX), churn-native (scikit-learn) and plans (DataFrame path) on one server."""
    models = {
        "churn": load_served("churn/1", warm_up=False),
        "churn-native": load_served("churn/1", prefer_onnx=False, warm_up=False),
        "plans": load_served("plans/1", warm_up=False),
    }
    with live_server(create_app(models)) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10.0) as opened:
        yield opened


def test_the_onnx_export_serves_by_default_and_native_on_request(
    serving_project: ServingProject,
) -> None:
    onnx = load_served("churn")  # the latest version is the export, churn/2
    assert (onnx.version_ref, onnx.runtime, onnx.runtime_version_ref) == (
        "churn/1",
        "onnxruntime",
        "churn/2",
    )
    assert onnx.ready and onnx.has_proba and onnx.classes == [0, 1]
    native = load_served("churn/2", prefer_onnx=False)
    assert (native.version_ref, native.runtime, native.runtime_version_ref) == (
        "churn/1",
        "sklearn",
        "churn/1",
    )
    frame = serving_project.features.head(40)
    rows = serving_project.rows(40)
    expected = ll.models.load("churn/1")
    for served in (onnx, native):
        answer = served.predict_rows(rows)
        assert answer.predictions.tolist() == expected.predict(frame).tolist()
        assert answer.probabilities is not None
        np.testing.assert_allclose(answer.probabilities, expected.predict_proba(frame), atol=1e-5)


def test_v1_rows_and_columns_predict_like_the_registered_model(
    client: httpx.Client,
    serving_project: ServingProject,
) -> None:
    frame = serving_project.features.head(5)
    expected = ll.models.load("churn/1")
    by_rows = client.post("/v1/deployments/churn/predict", json={"inputs": serving_project.rows(5)})
    by_columns = client.post(
        "/v1/deployments/churn-native/predict",
        json={
            "columns": list(frame.columns[::-1]),
            "data": frame[frame.columns[::-1]].values.tolist(),
        },
    )
    for answer in (by_rows, by_columns):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == expected.predict(frame).tolist()
        np.testing.assert_allclose(body["probabilities"], expected.predict_proba(frame), atol=1e-5)
        assert body["model_version"] == answer.headers["X-Model-Version"] == "churn/1"
        assert body["request_id"] == answer.headers["X-Request-Id"]
        assert re.fullmatch("[0-9a-f]{32}", body["request_id"])
    plans = client.post(
        "/v1/deployments/plans/predict",
        content=b'{"inputs": [{"plan": "pro", "usage": NaN, "tenure": 3},'
        b' {"plan": "basic", "usage": null, "tenure": 4.0}]}',
        headers={"Content-Type": "application/json"},
    )
    assert plans.status_code == 200, plans.text
    assert plans.json()["model_version"] == "plans/1"
    assert len(plans.json()["predictions"]) == 2


def test_a_traceparent_trace_id_becomes_the_request_id(
    client: httpx.Client,
    serving_project: ServingProject,
) -> None:
    body = {"inputs": serving_project.rows(1)}
    traced = client.post(
        "/v1/deployments/churn/predict",
        json=body,
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    assert traced.status_code == 200
    assert traced.json()["request_id"] == traced.headers["X-Request-Id"] == TRACE_ID
    for malformed in (f"00-{TRACE_ID}-00f067aa0ba902b7", f"00-{'0' * 32}-00f067aa0ba902b7-01", "x"):
        answer = client.post(
            "/v1/deployments/churn/predict", json=body, headers={"traceparent": malformed}
        )
        assert answer.status_code == 200
        assert answer.json()["request_id"] not in (TRACE_ID, "0" * 32)
        assert re.fullmatch("[0-9a-f]{32}", answer.headers["X-Request-Id"])


def test_open_inference_protocol_metadata_readiness_and_infer(
    client: httpx.Client,
    serving_project: ServingProject,
) -> None:
    frame = serving_project.features.head(3)
    expected = ll.models.load("churn/1")
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/churn/ready").json() == {"name": "churn", "ready": True}
    meta = client.get("/v2/models/churn").json()
    assert meta["platform"] == "onnxruntime_onnx" and meta["versions"] == ["churn/1"]
    assert meta["parameters"]["runtime_version"] == "churn/2"
    assert meta["inputs"][0] == {"name": "mean_radius", "datatype": "FP64", "shape": [-1]}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert client.get("/v2/models/churn-native").json()["platform"] == "sklearn"
    per_column = [
        {"name": name, "shape": [3, 1], "datatype": "FP64", "data": [[v] for v in frame[name]]}
        for name in frame.columns
    ]
    flat = {
        "name": "input",
        "shape": [3, 30],
        "datatype": "FP32",
        "data": frame.values.ravel().tolist(),
    }
    nested = {**flat, "data": frame.values.tolist()}
    for inputs in (per_column, [flat], [nested]):
        answer = client.post("/v2/models/churn/infer", json={"id": "req-7", "inputs": inputs})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["model_name"], body["model_version"], body["id"]) == (
            "churn",
            "churn/1",
            "req-7",
        )
        predict, proba = body["outputs"]
        assert predict == {
            "name": "predict",
            "shape": [3],
            "datatype": "INT64",
            "data": expected.predict(frame).tolist(),
        }
        assert (proba["name"], proba["shape"], proba["datatype"]) == (
            "predict_proba",
            [3, 2],
            "FP64",
        )
        np.testing.assert_allclose(proba["data"], expected.predict_proba(frame).ravel(), atol=1e-5)
    only = client.post(
        "/v2/models/churn/infer", json={"inputs": [flat], "outputs": [{"name": "predict_proba"}]}
    ).json()
    assert [output["name"] for output in only["outputs"]] == ["predict_proba"]
    assert re.fullmatch("[0-9a-f]{32}", only["id"])  # no "id" sent: the request id


def test_invocations_accepts_the_four_mlflow_payloads(
    serving_project: ServingProject,
) -> None:
    frame = serving_project.features.head(4)
    expected = ll.models.load("churn/1").predict(frame).tolist()
    columns = list(frame.columns)
    payloads: list[dict[str, Any]] = [
        {
            "dataframe_split": {
                "columns": columns,
                "data": frame.values.tolist(),
                "index": [0, 1, 2, 3],
            }
        },
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": frame.to_dict(orient="records")},
        {"instances": frame.values.tolist()},
        {"inputs": frame.to_dict(orient="list")},
        {"inputs": frame.to_dict(orient="records"), "params": {}},
    ]
    with live_server(create_app({"default": load_served("churn/1", warm_up=False)})) as url:
        for payload in payloads:
            answer = httpx.post(f"{url}/invocations", json=payload)
            assert answer.status_code == 200, (list(payload), answer.text)
            assert answer.json() == {"predictions": expected}
            assert answer.headers["X-Model-Version"] == "churn/1"


def test_metrics_count_requests_per_model_version(serving_project: ServingProject) -> None:
    rows = serving_project.rows(1)
    with live_server(create_app({"churn": load_served("churn/1", warm_up=False)})) as url:
        for _ in range(7):
            assert httpx.post(
                f"{url}/v1/deployments/churn/predict", json={"inputs": rows}
            ).is_success
        for _ in range(3):
            httpx.post(f"{url}/v2/models/churn/infer", json={"inputs": []})
        httpx.post(f"{url}/v1/deployments/nobody/predict", json={"inputs": rows})
        text = httpx.get(f"{url}/metrics").text
    assert _metric(text, "loopline_serving_requests_total", code="200", endpoint="v1") == 7
    assert _metric(text, "loopline_serving_requests_total", code="422", endpoint="v2") == 3
    assert _metric(text, "loopline_serving_requests_total", code="404", deployment="") == 1
    assert _metric(text, "loopline_serving_request_duration_seconds_count", deployment="churn") == 7
    assert _metric(text, "loopline_serving_errors_total", type="InvalidInput") == 3
    assert _metric(text, "loopline_serving_errors_total", type="NotFound") == 1
    assert _metric(text, "loopline_serving_model_ready", runtime="onnxruntime") == 1


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match[2])
    return total


def test_ready_only_after_loading_and_warm_up(serving_project: ServingProject) -> None:
    release = threading.Event()

    def load() -> dict[str, Any]:
        release.wait(20)
        return {"churn": load_served("churn/1", warm_up=False)}

    with live_server(create_app(load), wait=False) as url:
        _wait_live(url)
        assert httpx.get(f"{url}/health/live").status_code == 200
        assert httpx.get(f"{url}/health/ready").status_code == 503
        assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": False}
        early = httpx.post(
            f"{url}/v1/deployments/churn/predict", json={"inputs": serving_project.rows(1)}
        )
        assert early.status_code == 503 and early.json()["error"]["type"] == "NotReady"
        release.set()
        wait_ready(url)
        assert httpx.get(f"{url}/v2/models/churn/ready").json()["ready"] is True
        late = httpx.post(
            f"{url}/v1/deployments/churn/predict", json={"inputs": serving_project.rows(1)}
        )
        assert late.status_code == 200


def _wait_live(url: str) -> None:
    eventually(
        lambda: httpx.get(f"{url}/health/live").status_code == 200,
        timeout=10,
        message="the server never answered /health/live",
        ignoring=(httpx.TransportError,),
    )


def test_the_sink_gets_every_prediction_and_its_failures_stay_inside(
    serving_project: ServingProject,
) -> None:
    records: list[PredictionRecord] = []
    done = threading.Event()

    def sink(record: PredictionRecord) -> None:
        records.append(record)
        if len(records) == 3:
            done.set()
        if len(records) == 2:
            raise RuntimeError("the prediction log is down")

    rows = serving_project.rows(2)
    with live_server(
        create_app({"churn": load_served("churn/1", warm_up=False)}, sink=sink)
    ) as url:
        answers = [
            httpx.post(
                f"{url}/v1/deployments/churn/predict",
                json={"inputs": rows},
                headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"} if i == 0 else {},
            )
            for i in range(3)
        ]
        assert all(answer.status_code == 200 for answer in answers)
        assert done.wait(10)
    first = records[0]
    assert (first.request_id, first.deployment, first.model_version) == (
        TRACE_ID,
        "churn",
        "churn/1",
    )
    assert first.runtime_version == "churn/2" and first.endpoint == "v1"
    assert first.inputs == rows
    assert first.predictions.tolist() == answers[0].json()["predictions"]
    assert first.latency_ms > 0 and first.time.tzinfo is not None


def test_concurrent_clients_are_answered_in_micro_batches(
    server: str,
    serving_project: ServingProject,
) -> None:
    rows = serving_project.rows(50)
    expected = ll.models.load("churn/1").predict(serving_project.features.head(50)).tolist()
    failures: list[str] = []

    def client_thread() -> None:
        with httpx.Client(base_url=server, timeout=30.0) as client:
            for index, row in enumerate(rows):
                answer = client.post("/v1/deployments/churn-native/predict", json={"inputs": [row]})
                if answer.status_code != 200 or answer.json()["predictions"] != [expected[index]]:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client_thread) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    text = httpx.get(f"{server}/metrics").text
    batches = _metric(text, "loopline_serving_batch_requests_count", deployment="churn-native")
    alone = _metric(
        text, "loopline_serving_batch_requests_bucket", deployment="churn-native", le="1.0"
    )
    merged = _metric(text, "loopline_serving_batch_requests_sum", deployment="churn-native")
    assert merged >= 400 and alone < batches, "no predict call ever served two requests"


async def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        return list(
            await asyncio.gather(
                *(client.post("/v1/deployments/plans/predict", json=body) for body in bodies)
            )
        )


def test_a_row_the_model_refuses_fails_only_its_own_request(server: str) -> None:
    good = {"inputs": [{"plan": "pro", "usage": 9.5, "tenure": 12}]}
    bad = {"inputs": [{"plan": "gold", "usage": 9.5, "tenure": 12}]}
    for _ in range(3):  # whether or not they share a batch, only `bad` fails
        answers = asyncio.run(_post_all(server, [good, good, bad, good, good, good]))
        assert [answer.status_code for answer in answers] == [200, 200, 422, 200, 200, 200]
        assert "gold" in answers[2].json()["error"]["message"]


def test_the_openapi_document_describes_every_endpoint(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    bodies = {
        "/v1/deployments/{name}/predict": "PredictRequest",
        "/v2/models/{name}/infer": "InferRequest",
        "/invocations": "InvocationsRequest",
    }
    for path, title in bodies.items():
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["title"] == title
        assert "$ref" in operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "422" in operation["responses"] and "413" in operation["responses"]
    assert {"/v2/models/{name}", "/health/ready", "/metrics"} <= set(paths)


def test_bad_settings_and_names_are_refused_before_serving(
    serving_project: ServingProject,
) -> None:
    model = load_served("churn/1", warm_up=False)
    for settings in ({"max_batch_size": 0}, {"max_body_bytes": 0}, {"max_batch_wait_ms": -1}):
        with pytest.raises(InvalidInput):
            create_app({"churn": model}, **settings)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="deployment name"):
        create_app({"churn/v1": model})
    with pytest.raises(InvalidInput, match="nothing to serve"):
        create_app({})
    with pytest.raises(NotFound):
        load_served("nobody")


def test_batching_can_be_turned_off(serving_project: ServingProject) -> None:
    rows = serving_project.rows(1)
    app = create_app({"churn": load_served("churn/1", warm_up=False)}, max_batch_size=1)
    with live_server(app) as url:
        bodies = [{"inputs": rows}] * 16

        async def post_all() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
                posts = (client.post("/v1/deployments/churn/predict", json=b) for b in bodies)
                return [answer.status_code for answer in await asyncio.gather(*posts)]

        assert asyncio.run(post_all()) == [200] * 16
        text = httpx.get(f"{url}/metrics").text
    assert _metric(text, "loopline_serving_batch_requests_count", deployment="churn") == 16
    assert _metric(text, "loopline_serving_batch_requests_bucket", le="1.0") == 16
