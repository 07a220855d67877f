"""The remote client's HTTP layer against a real server on a real port: answers, the
loopline error an error answer names, and URLs it refuses."""

from __future__ import annotations

import pytest

from loopline.errors import InvalidInput, NotFound, StoreUnavailable
from loopline.store.remote import RemoteMetadataStore, RemoteSession


def test_answers_and_named_errors(platform_server) -> None:  # type: ignore[no-untyped-def]
    session = RemoteSession(platform_server.url + "/", token="llt_secret")
    try:
        assert session.call("GET", "/health")["status"] == "ok"
        assert session.call("GET", "/whoami")["role"] == "admin"
        with pytest.raises(NotFound, match="no such route: GET nope"):
            session.call("GET", "/nope")
        assert "llt_secret" not in repr(session)
    finally:
        session.close()
    store = RemoteMetadataStore(platform_server.url)
    assert store.server_version
    with pytest.raises(AttributeError):
        store.no_such_area  # noqa: B018
    store.close()


@pytest.mark.parametrize(
    "url", ["ftp://host", "file:///etc/passwd", "http://", "host:5000", "http://h/?q=1"]
)
def test_only_http_server_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidInput, match="server URL"):
        RemoteSession(url)


def test_an_unreachable_server_is_a_one_line_store_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    session = RemoteSession(f"http://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailable, match="cannot reach the loopline server"):
        session.call("GET", "/health")
    with pytest.raises(StoreUnavailable, match="may or may not have been applied"):
        session.call("POST", "/runs", body={})
