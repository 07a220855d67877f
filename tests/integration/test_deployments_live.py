"""Stored deployments served by a real server on a real port: canary split, shadow, A/B
stickiness, and hot swaps under a steady stream of requests with zero failures."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

import loopline as ll
from fixtures.serving import ServingProject, live_server, open_serving_project
from fixtures.waiting import eventually
from loopline.predictions import PredictionRecord
from loopline.project import stores as opened
from loopline.serving import deployments as dep
from loopline.serving.online import _stored
from loopline.serving.online._stored import StoredDeployments
from loopline.serving.online.app import create_app

POLL = 0.2


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    """churn/1 (+ its ONNX export churn/2) and churn/3, a differently fitted model."""
    with open_serving_project(tmp_path_factory.mktemp("deployments")) as opened:
        target = (opened.features["mean_radius"] > 14).astype(int)
        other = LogisticRegression(max_iter=2000).fit(opened.features, target)
        ll.models.log_model(other, name="churn", input_example=opened.features.head(3))
        yield opened


class Records:
    """A sink that keeps what it receives."""

    def __init__(self) -> None:
        self.items: list[PredictionRecord] = []
        self.lock = threading.Lock()

    def __call__(self, record: PredictionRecord) -> None:
        with self.lock:
            self.items.append(record)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[PredictionRecord]:
        def received() -> list[PredictionRecord] | None:
            with self.lock:
                return list(self.items) if len(self.items) >= count else None

        return eventually(
            received,
            timeout=timeout,
            interval=0.02,
            message=lambda: f"the sink received {len(self.items)} records, expected {count}",
        )


def _app(name: str, sink: Records | None = None):  # type: ignore[no-untyped-def]
    return create_app(StoredDeployments([name], poll_seconds=POLL), sink=sink)


def _predict(client: httpx.Client, name: str, body: object, **kw: object) -> httpx.Response:
    return client.post(f"/v1/deployments/{name}/predict", json=body, **kw)  # type: ignore[arg-type]


def test_a_canary_gets_its_share_and_every_answer_names_its_version(
    project: ServingProject,
) -> None:
    dep.create_deployment("canary", "churn/1")
    dep.update_deployment("canary", canary="churn/3", weight=20)
    with live_server(_app("canary")) as url, httpx.Client(base_url=url) as client:
        counts: collections.Counter[str] = collections.Counter()
        for i in range(400):
            answer = _predict(client, "canary", {"inputs": project.rows(1, i % 100)})
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-model-version"] == answer.json()["model_version"]
            counts[answer.json()["model_version"]] += 1
        status = client.get("/health/ready").json()["deployments"]["canary"]
        metrics = client.get("/metrics").text
    assert set(counts) == {"churn/1", "churn/3"}
    assert 40 <= counts["churn/3"] <= 130, counts  # 20 % of 400 = 80
    assert status["canary"] == {"model_version": "churn/3", "weight": 20.0}
    assert status["revision"] == 2
    assert 'loopline_serving_requests_total{code="200",deployment="canary"' in metrics
    assert f'model_version="churn/3"}} {float(counts["churn/3"])}' in metrics


def test_the_shadow_answers_only_into_the_log(project: ServingProject) -> None:
    dep.create_deployment("shadowed", "churn/1")
    dep.update_deployment("shadowed", shadow="churn/3")
    records = Records()
    with live_server(_app("shadowed", records)) as url, httpx.Client(base_url=url) as client:
        for i in range(5):
            answer = _predict(client, "shadowed", {"inputs": project.rows(3, i)})
            assert answer.json()["model_version"] == "churn/1"
        logged = records.wait_for(5)
        metrics = client.get("/metrics").text
    assert {r.model_version for r in logged} == {"churn/1"}
    assert {r.shadow_version for r in logged} == {"churn/3"}
    assert all(r.shadow_error is None for r in logged)
    assert all(r.shadow_predictions is not None and len(r.shadow_predictions) == 3 for r in logged)
    assert 'outcome="ok"} 5.0' in metrics


def test_an_ab_split_is_sticky_per_key(project: ServingProject) -> None:
    dep.create_deployment("split", "churn/1")
    dep.update_deployment("split", ab=["churn/1", "churn/3"], key="customer_id")
    with live_server(_app("split")) as url, httpx.Client(base_url=url) as client:
        seen: dict[str, set[str]] = collections.defaultdict(set)
        for round_ in range(3):
            for customer in range(30):
                answer = _predict(
                    client,
                    "split",
                    {"inputs": project.rows(1, round_)},
                    headers={"X-Routing-Key": f"c{customer}"},
                )
                assert answer.status_code == 200, answer.text
                seen[f"c{customer}"].add(answer.json()["model_version"])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert set().union(*seen.values()) == {"churn/1", "churn/3"}


def test_a_hot_swap_under_load_fails_no_request(project: ServingProject) -> None:
    dep.create_deployment("swap", "churn/1")
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def stream(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    answer = _predict(client, "swap", {"inputs": project.rows(1, i % 50)})
                except httpx.TransportError as exc:
                    failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                else:
                    versions.append(answer.json()["model_version"])
                i += 1

    with live_server(_app("swap")) as url:
        clients = [threading.Thread(target=stream, args=(url,)) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            eventually(
                lambda: len(versions) >= 20,
                timeout=15,
                interval=0.02,
                message="the stream was not flowing before the swap",
            )
            dep.update_deployment("swap", model="churn/3", reason="swap under load")
            eventually(
                lambda: versions[-1] == "churn/3",
                timeout=15,
                message="the server never answered with churn/3",
            )
            dep.rollback_deployment("swap")
            eventually(
                lambda: versions[-1] == "churn/1",
                timeout=15,
                message="the server never rolled back to churn/1",
            )
            # the stream goes on after the rollback (and must stay on churn/1)
            rolled_back_at = len(versions)
            eventually(
                lambda: len(versions) >= rolled_back_at + 20,
                timeout=15,
                interval=0.02,
                message="the stream stopped after the rollback",
            )
        finally:
            stop.set()
            for client in clients:
                client.join(10)
        ready = httpx.get(f"{url}/health/ready").json()["deployments"]["swap"]
    assert failures == []
    assert "churn/3" in versions and versions[-1] == "churn/1"
    first_new = versions.index("churn/3")
    assert "churn/1" in versions[:first_new]
    assert ready["revision"] == 3 and ready["model_version"] == "churn/1"


def test_a_change_that_cannot_load_keeps_the_old_configuration(
    project: ServingProject, caplog: pytest.LogCaptureFixture
) -> None:
    """A revision naming a version whose package is gone is logged; serving goes on."""
    dep.create_deployment("sturdy", "churn/1")
    with live_server(_app("sturdy")) as url, httpx.Client(base_url=url) as client:
        broken = dep.get_deployment("sturdy").spec.to_dict()
        broken["model"] = {"model": "churn/404", "ref": "churn/404"}
        with caplog.at_level(logging.WARNING, logger="loopline"):
            opened().metadata.deployments.update(
                "sturdy", broken, action="update", actor="test", expected_revision=1
            )
            eventually(
                lambda: "'sturdy' revision 2 could not be loaded" in caplog.text,
                timeout=15,
                message="the server never tried revision 2",
            )
        answer = _predict(client, "sturdy", {"inputs": project.rows(1)})
        assert answer.status_code == 200 and answer.json()["model_version"] == "churn/1"
        assert client.get("/health/ready").json()["deployments"]["sturdy"]["revision"] == 1


def test_a_revision_that_cannot_load_is_retried_with_backoff(
    project: ServingProject, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dep.create_deployment("patient", "churn/1")
    source = StoredDeployments(["patient"], poll_seconds=1.0)
    assert source.load({})["patient"].revision == 1
    broken = dep.get_deployment("patient").spec.to_dict()
    broken["model"] = {"model": "churn/404", "ref": "churn/404"}
    opened().metadata.deployments.update(
        "patient", broken, action="update", actor="test", expected_revision=1
    )
    now = [1000.0]
    monkeypatch.setattr(_stored, "monotonic", lambda: now[0])

    tries = []
    for at in (1000.0, 1000.5, 1001.1, 1002.0, 1003.2, 1005.0):  # each poll
        now[0] = at
        caplog.clear()
        assert source.load({"patient": 1}) == {}
        tries += [at for r in caplog.records if "could not be loaded" in r.getMessage()]
    assert tries == [1000.0, 1001.1, 1003.2]  # after 1 s, then 2 s, then 4 s

    fixed = dep.get_deployment("patient").spec.to_dict()
    fixed["model"] = {"model": "churn/3", "ref": "churn/3"}
    opened().metadata.deployments.update(
        "patient", fixed, action="update", actor="test", expected_revision=2
    )
    assert source.load({"patient": 1})["patient"].revision == 3  # a new revision: at once


def test_predictions_reach_the_log_and_feedback_joins_them(project: ServingProject) -> None:
    from loopline.predictions import PredictionLog, read_feedback, read_predictions

    dep.create_deployment("logged", "churn/1")
    dep.update_deployment("logged", shadow="churn/3")
    sink = PredictionLog(flush_seconds=0.2)
    ids = []
    with live_server(_app("logged", sink)) as url, httpx.Client(base_url=url) as client:  # type: ignore[arg-type]
        for i in range(6):
            answer = _predict(client, "logged", {"inputs": project.rows(2, i)})
            assert answer.status_code == 200
            ids.append(answer.headers["x-request-id"])
        labels = [{"request_id": rid, "label": 1, "row": 1} for rid in ids[:3]]
        recorded = client.post("/v1/deployments/logged/feedback", json={"feedback": labels})
        one = client.post(
            "/v1/deployments/logged/feedback", json={"request_id": ids[5], "label": 0}
        )
        bad = [
            client.post("/v1/deployments/logged/feedback", json={"request_id": ids[0]}),
            client.post(
                "/v1/deployments/logged/feedback",
                content=b'{"request_id": "a", "label": NaN}',
                headers={"content-type": "application/json"},
            ),
            client.post(
                "/v1/deployments/logged/feedback", json=[{"request_id": "../x", "label": 1}]
            ),
            client.post("/v1/deployments/logged/feedback", json=[]),
            client.post("/v1/deployments/logged/feedback", json="label"),
            client.post(
                "/v1/deployments/logged/feedback",
                content=b"request_id=a",
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
            client.post("/v1/deployments/nope/feedback", json={"request_id": "a", "label": 1}),
        ]
    # the server stopped cleanly: everything buffered was delivered
    assert recorded.status_code == 200 and recorded.json() == {"recorded": 3}
    assert one.json() == {"recorded": 1}
    assert [answer.status_code for answer in bad] == [422, 422, 422, 422, 422, 415, 404]
    assert bad[1].json()["error"]["field"] is not None
    assert all(set(answer.json()) == {"error"} for answer in bad)
    log = read_predictions("logged").to_pylist()
    assert len(log) == 12 and {row["request_id"] for row in log} == set(ids)
    assert {row["model_version"] for row in log} == {"churn/1"}
    assert {row["shadow_version"] for row in log} == {"churn/3"}
    assert log[0]["inputs"]["mean_radius"] == project.rows(1)[0]["mean_radius"]
    feedback = read_feedback("logged").to_pylist()
    assert sorted((f["request_id"], f["row"], f["label"]) for f in feedback) == sorted(
        [(rid, 1, 1) for rid in ids[:3]] + [(ids[5], 0, 0)]
    )


def test_micro_batched_requests_are_logged_request_by_request(project: ServingProject) -> None:
    """Concurrent requests answered by one predict call reach the log as one batch; each
    request keeps its id, its rows (row index from 0) and its inputs."""
    from concurrent.futures import ThreadPoolExecutor

    from loopline.predictions import PredictionLog, read_predictions

    dep.create_deployment("batched", "churn/1")
    sink = PredictionLog(flush_seconds=0.2)
    sent: dict[str, list[dict[str, object]]] = {}
    with live_server(_app("batched", sink)) as url:

        def call(i: int) -> None:
            rows = project.rows(1 + i % 3, i)
            with httpx.Client(base_url=url) as client:
                answer = _predict(client, "batched", {"inputs": rows})
            assert answer.status_code == 200, answer.text
            sent[answer.headers["x-request-id"]] = rows

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(40)))
    log = read_predictions("batched").to_pylist()
    assert len(log) == sum(len(rows) for rows in sent.values())
    for entry in log:
        rows = sent[entry["request_id"]]
        assert entry["inputs"]["mean_radius"] == rows[entry["row"]]["mean_radius"]
        assert entry["model_version"] == "churn/1" and entry["latency_ms"] > 0
        assert entry["endpoint"] == "v1" and entry["shadow_version"] is None
    assert {(e["request_id"], e["row"]) for e in log} == {
        (rid, i) for rid, rows in sent.items() for i in range(len(rows))
    }
