"""Names a client sent come back in a response header (`X-Dropped-Fields`, the fields
that are not model inputs): a header value must never carry CR or LF (response
splitting), text outside latin-1 (h11 refuses to send it: a 500), or a name of any
length. Each name is clipped and percent-encoded, and the list is cut short."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest

from fixtures.serving import ServingProject, live_server, open_serving_project
from loopline.serving import create_app, load_served
from loopline.serving._redact import CLIP, header_list

PLANS = "/v1/deployments/plans/predict"
PLAN_ROW = {"plan": "pro", "usage": 9.5, "tenure": 12}
HOSTILE_NAMES = [
    "a\r\nSet-Cookie: session=stolen",
    "b\nX-Injected: 1",
    "\u00e9t\u00e9",  # latin-1
    "\U0001f600 \u4e2d\u6587",  # outside latin-1
    "comma,inside",
    '"quoted"; x=1',
    "\x00\x7f",
    "%41",  # already looks encoded
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProject]:
    with open_serving_project(tmp_path_factory.mktemp("header")) as opened:
        yield opened


@pytest.fixture(scope="module")
def server(project: ServingProject) -> Iterator[str]:
    with live_server(create_app({"plans": load_served("plans/1", warm_up=False)})) as url:
        yield url


def _dropped(server: str, extra: dict[str, object]) -> httpx.Response:
    answer = httpx.post(f"{server}{PLANS}", json={"inputs": [{**PLAN_ROW, **extra}]}, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    return answer


def test_hostile_field_names_in_the_dropped_fields_header_are_encoded(server: str) -> None:
    answer = _dropped(server, dict.fromkeys(HOSTILE_NAMES, 1))
    raw = dict(answer.headers.raw)[b"x-dropped-fields"]
    assert raw.isascii() and b"\r" not in raw and b"\n" not in raw
    assert b"Set-Cookie" not in b"".join(k for k, _ in answer.headers.raw)
    assert "x-injected" not in answer.headers
    assert [unquote(part) for part in raw.decode().split(",")] == HOSTILE_NAMES


def test_a_huge_extra_field_name_is_dropped_at_once_and_clipped(server: str) -> None:
    """A 60 KB key was quoted into a 422 error; now that it is dropped, it is quoted in a
    header, clipped as error messages are."""
    name = "sk-" * 20_000
    started = time.monotonic()
    answer = _dropped(server, {name: 1})
    assert time.monotonic() - started < 2.0
    assert answer.headers["X-Dropped-Fields"] == name[:CLIP]


def test_many_extra_fields_are_cut_short_in_the_header(server: str) -> None:
    answer = _dropped(server, {f"extra{i}": i for i in range(5_000)})
    parts = answer.headers["X-Dropped-Fields"].split(",")
    assert parts[-1] == "..." and parts[:2] == ["extra0", "extra1"] and len(parts) == 21


def test_the_header_list_never_holds_a_separator_inside_a_name() -> None:
    value = header_list(["a,b", "c d", "é"])
    assert value == "a%2Cb,c%20d,%C3%A9"
    assert header_list([]) == ""
