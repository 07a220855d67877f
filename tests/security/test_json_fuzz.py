"""The JSON fuzz against every endpoint of the prediction app (issue 11).

Hypothesis writes request bodies over the JSON grammar: arbitrary nested values with
integers past int64, NaN and infinities (as JSON's `NaN` / `Infinity` literals),
NaN-like strings, lone surrogates (Python's json escapes them as `"\\ud800"`), hostile
keys; valid bodies with one value, string or number replaced or one key renamed or
added; and bytes that are not JSON or not UTF-8, spliced into valid bodies. Every one
goes to a real uvicorn server on a free port and must be answered below 500 (a JSON
error body when refused); the next request on the same client must still be answered
200: a hostile request never costs the connection's next one. Every value the server
accepted must be one that Arrow can hold (what the prediction log writes later, off
the response path).

The endpoints are read from the app's routes: one added without a fuzz strategy here
fails `test_every_route_of_the_prediction_app_is_fuzzed`. LOOPLINE_FUZZ_EXAMPLES=1000
runs a deeper search (~3 minutes) than the default (~15 s).
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.serving import ServingProject, error_of, live_server, open_serving_project
from fixtures.waiting import eventually
from loopline.predictions import PredictionRecord
from loopline.serving import create_app, load_served

PLAN_ROW = {"plan": "pro", "usage": 9.5, "tenure": 12}
GOOD_PATH = "/v1/deployments/plans/predict"
GOOD_BODY = {"inputs": [PLAN_ROW]}
PREDICT_ROUTES = {
    "/v1/deployments/{name}/predict",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/invocations",
    "/v1/deployments/{name}/invocations",
}
# route -> the deployment names it is called with (besides hostile ones)
BODY_ROUTES = {
    "/v1/deployments/{name}/predict": ("plans", "default"),
    "/v1/deployments/{name}/feedback": ("plans",),
    "/v2/models/{name}/infer": ("plans", "default"),
    "/v2/models/{name}/versions/{version}/infer": ("plans", "default"),
    "/invocations": ("",),
    "/v1/deployments/{name}/invocations": ("plans", "default"),
}
READ_ROUTES = {
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/versions/{version}/ready",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/health/live",
    "/health/ready",
    "/ping",
    "/health",
    "/version",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
FUZZED = {("POST", path) for path in BODY_ROUTES} | {("GET", path) for path in READ_ROUTES}
EXAMPLES = int(os.environ.get("LOOPLINE_FUZZ_EXAMPLES", "150"))  # per test and route

# --- the JSON grammar, hostile ----------------------------------------------------------

EDGE_INTS = st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**31, -(2**31) - 1, 10**30, 10**300]
)
LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff", "\udc00\ud800"])
ODD_TEXT = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "nan", "1e999", "-0", "null", "", "\x00", "\ud83d\ude00",
     "../../etc/passwd", "/tmp/x", "default", "pro", "input", "predict", "request_id"]
)  # fmt: skip
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=12)
TEXT = st.one_of(LONE_SURROGATES, ODD_TEXT, ANY_TEXT)
# hostile leaves drawn as often as ordinary ones
HOSTILE = st.one_of(EDGE_INTS, LONE_SURROGATES, st.sampled_from([math.nan, math.inf, -math.inf]))
SCALARS = st.one_of(HOSTILE, st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=10,
)
BAD_BYTES = st.sampled_from(
    [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\\", b'"', b"]", b"}", b",", b"\\ud800"]
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6
    + ["application/json; charset=utf-8", "text/plain", "", "text/csv", "text/csv; charset=x"]
)
NAMES = st.one_of(st.just("plans"), TEXT)


def _dumps(value: Any) -> bytes:
    # ensure_ascii: a lone surrogate becomes the escape "\ud800" (it cannot be UTF-8)
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def _places(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON value, outermost first."""
    found: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            found.append((item, key))
            if isinstance(item[key], dict | list):
                stack.append(item[key])
    return found


MUTATIONS = ["any", "value", "value", "text", "text", "number", "number", "key", "add", "bytes"]
NUMBER_EDGES = st.one_of(EDGE_INTS, st.floats(), st.sampled_from([1e308, -1e300, 3.5e38]))


@st.composite
def hostile_body(draw: st.DrawFn, valid: list[Any]) -> bytes:
    """A body for an endpoint whose good bodies are `valid`: arbitrary JSON; or a good
    body with one value replaced (by any value, a string by hostile text, a number by an
    edge of the number types), one key renamed or added; or bytes spliced into one."""
    how = draw(st.sampled_from(MUTATIONS))
    if how == "any":
        return _dumps(draw(VALUES))
    body = copy.deepcopy(draw(st.sampled_from(valid)))
    places = _places(body)
    if how == "text":
        places = [(c, k) for c, k in places if isinstance(c[k], str)]
    elif how == "number":
        places = [(c, k) for c, k in places if type(c[k]) in (int, float)]
    elif how in ("key", "add"):
        places = [(c, k) for c, k in places if isinstance(c, dict)]
    if how != "bytes" and places:
        container, key = places[draw(st.integers(0, len(places) - 1))]
        if how == "add":
            container[draw(TEXT)] = draw(VALUES)
        elif how == "key":
            container[draw(TEXT)] = container.pop(key)
        else:
            strategy = {"text": TEXT, "number": NUMBER_EDGES}.get(how, VALUES)
            container[key] = draw(strategy)
        return _dumps(body)
    raw = _dumps(body)
    at = draw(st.integers(0, len(raw)))
    cut = draw(st.integers(0, 3))
    return raw[:at] + draw(BAD_BYTES) + raw[at + cut :]


# --- the server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("fuzz")) as opened:
        yield opened


class Recorder:
    """A sink that keeps every answered request (its rows are what the log would write)."""

    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []
        self.lock = threading.Lock()

    def __call__(self, record: PredictionRecord) -> None:
        with self.lock:
            self.records.append(record)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def app(project: ServingProject, recorder: Recorder) -> Any:
    models = {
        "default": load_served("churn/1", warm_up=False),
        "plans": load_served("plans/1", warm_up=False),
    }
    return create_app(models, sink=recorder, body_timeout_seconds=5.0)


@pytest.fixture(scope="module")
def server(app: Any) -> Iterator[str]:
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def valid_bodies(project: ServingProject) -> dict[str, list[Any]]:
    """Good bodies per route (each answered 200, or for feedback 200 / 422)."""
    row = project.rows(1)[0]
    tensors = [
        {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
        {"name": "usage", "shape": [1], "datatype": "FP64", "data": [9.5]},
        {"name": "tenure", "shape": [1, 1], "datatype": "INT64", "data": [[12]]},
    ]
    matrix = {"name": "input", "shape": [1, 30], "datatype": "FP64", "data": list(row.values())}
    return {
        "/v1/deployments/{name}/predict": [
            {"inputs": [PLAN_ROW, {**PLAN_ROW, "usage": None}]},
            {"columns": list(PLAN_ROW), "data": [list(PLAN_ROW.values())]},
        ],
        "/v1/deployments/{name}/feedback": [
            {"request_id": "r1", "label": 1},
            {"feedback": [{"request_id": "r2", "label": "yes", "row": 0}]},
            [{"request_id": "r3", "label": 0.5}],
        ],
        "/v2/models/{name}/infer": [
            {"id": "q1", "inputs": tensors, "outputs": [{"name": "predict"}]},
            {"inputs": [matrix]},
        ],
        "/v2/models/{name}/versions/{version}/infer": [
            {"id": "q1", "inputs": tensors, "outputs": [{"name": "predict"}]},
            {"inputs": [matrix]},
        ],
        "/invocations": [
            {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}},
            {"dataframe_records": [row]},
            {"instances": [row]},
            {"inputs": {name: [value] for name, value in row.items()}},
        ],
        "/v1/deployments/{name}/invocations": [
            {"dataframe_split": {"columns": list(PLAN_ROW), "data": [list(PLAN_ROW.values())]}},
            {"dataframe_records": [PLAN_ROW, {**PLAN_ROW, "usage": None}]},
            {"instances": [PLAN_ROW]},
        ],
    }


def _check(answer: httpx.Response, project: ServingProject) -> None:
    """Below 500; a refusal is a JSON error body; no server path in any answer."""
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/json", answer.text
        error = error_of(answer)
        assert isinstance(error["type"], str) and isinstance(error["message"], str)
    assert str(project.root) not in answer.text


def _next_works(client: httpx.Client) -> None:
    """The client's next request (on the same connection unless the server said
    `Connection: close`) is answered."""
    answer = client.post(GOOD_PATH, json=GOOD_BODY)
    assert answer.status_code == 200, answer.text


def _path(route: str, name: str) -> str:
    # surrogatepass: a lone surrogate in a name is sent as its (invalid) UTF-8 bytes
    quoted = quote(name, safe="", errors="surrogatepass")
    # a version: the served one for the deployments' names, else the hostile name
    version = "1" if name in ("plans", "default") else quoted
    return route.replace("{name}", quoted).replace("{version}", version)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_every_route_of_the_prediction_app_is_fuzzed(app: Any) -> None:
    routes = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    assert routes == FUZZED, f"not fuzzed: {routes - FUZZED}; gone: {FUZZED - routes}"


@pytest.mark.parametrize("route", sorted(BODY_ROUTES))
def test_hostile_bodies_are_never_a_5xx_and_the_connection_lives_on(
    server: str,
    project: ServingProject,
    recorder: Recorder,
    valid_bodies: dict[str, list[Any]],
    route: str,
) -> None:
    answered = [0]  # 200s of predict endpoints, hostile and good: each reaches the sink
    with httpx.Client(base_url=server, timeout=10.0) as client:

        @FUZZ_SETTINGS
        @given(
            body=hostile_body(valid_bodies[route]),
            name=st.one_of(st.sampled_from(BODY_ROUTES[route]), NAMES),
            content_type=CONTENT_TYPES,
        )
        def fuzz(body: bytes, name: str, content_type: str) -> None:
            headers = {"content-type": content_type} if content_type else {}
            answer = client.post(_path(route, name), content=body, headers=headers)
            _check(answer, project)
            answered[0] += 1 + (answer.status_code == 200 and route in PREDICT_ROUTES)
            _next_works(client)

        before = _recorded(recorder)
        fuzz()
    # every answered request reached the sink; all its values are Arrow values
    records = _wait_for(recorder, before + answered[0])
    _assert_arrow_can_hold(records[before:])


def test_read_routes_take_hostile_names_queries_and_bodies(
    server: str, project: ServingProject
) -> None:
    with httpx.Client(base_url=server, timeout=10.0) as client:

        @FUZZ_SETTINGS
        @given(
            route=st.sampled_from(sorted(READ_ROUTES)),
            name=NAMES,
            query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
            body=st.one_of(st.none(), VALUES.map(_dumps)),
        )
        def fuzz(route: str, name: str, query: Any, body: bytes | None) -> None:
            answer = client.request("GET", _path(route, name), params=query, content=body)
            _check(answer, project)
            _next_works(client)

        fuzz()


CSV_PIECES = st.sampled_from(
    [",", "\n", "\r\n", '"', "plan", "usage", "tenure", "pro", "basic", "", "9.5", "-0", "12",
     "NaN", "inf", "1e400", "9" * 30, "True", "\x00", "\u00e9", "\U0001f600", "a.1", " ", ";"]
)  # fmt: skip
HEADER = "plan,usage,tenure\n"


@pytest.mark.parametrize("route", ["/invocations", "/v1/deployments/{name}/invocations"])
def test_hostile_csv_bodies_are_never_a_5xx_and_the_connection_lives_on(
    server: str, project: ServingProject, route: str
) -> None:
    """CSV bodies read by pandas: any text, or the plans header with hostile rows."""
    with httpx.Client(base_url=server, timeout=10.0) as client:

        @FUZZ_SETTINGS
        @given(
            pieces=st.lists(CSV_PIECES, max_size=30),
            header=st.booleans(),
            bad=st.one_of(st.none(), BAD_BYTES),
        )
        def fuzz(pieces: list[str], header: bool, bad: bytes | None) -> None:
            body = ((HEADER if header else "") + "".join(pieces)).encode()
            body += bad or b""
            headers = {"content-type": "text/csv"}
            answer = client.post(_path(route, "plans"), content=body, headers=headers)
            _check(answer, project)
            _next_works(client)

        fuzz()


def test_invalid_utf8_and_raw_surrogates_on_one_keep_alive_connection(server: str) -> None:
    """Byte sequences no JSON text may hold, one after another on one connection: each a
    400, each followed by a good request on the same (kept-alive) connection."""
    bodies = [b'{"inputs": [{"plan": "\xed\xa0\x80"}]}', b"\xff\xfe{}", b'{"\xc0\xaf": 1}']
    bodies += [b'{"inputs": [{"\\ud800": 1}]}', b'["\\udc00"]', b'{"id": "\\udbff"}']
    peers = set()
    with httpx.Client(base_url=server, timeout=10.0) as client:
        for path in ("/v1/deployments/plans/predict", "/v2/models/plans/infer", "/invocations"):
            for body in bodies:
                answer = client.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
                assert answer.status_code == 400, answer.text
                assert "connection" not in answer.headers  # kept alive
                _next_works(client)
                peers.add(answer.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(peers) == 1  # one connection served all of them


# --- helpers -----------------------------------------------------------------------------


def _recorded(recorder: Recorder) -> int:
    with recorder.lock:
        return len(recorder.records)


def _wait_for(recorder: Recorder, count: int, seconds: float = 10.0) -> list[PredictionRecord]:
    eventually(
        lambda: _recorded(recorder) >= count,
        timeout=seconds,
        message=lambda: f"{_recorded(recorder)} of {count} records",
    )
    with recorder.lock:
        return list(recorder.records)


def _assert_arrow_can_hold(records: list[PredictionRecord]) -> None:
    import pyarrow as pa

    for record in records:
        for name, values in record.columns.items():
            for value in values:
                try:
                    pa.array([value], from_pandas=True)
                except (pa.ArrowException, OverflowError, UnicodeError) as exc:
                    pytest.fail(f"accepted {name}={value!r}, which Arrow cannot hold: {exc}")
