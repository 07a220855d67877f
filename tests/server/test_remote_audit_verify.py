"""Verifying the audit log's hash chain through the platform server: the remote client's
`verify` and `loopline audit verify` against a server report what the server's database
holds, readers may verify, and bad parameters are 4xx JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from loopline.cli.app import run as loopline_cli
from loopline.errors import InvalidInput
from loopline.server._permissions import Role
from loopline.store.remote import RemoteMetadataStore
from server._ops_http import app_client, as_role, error_of

pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

VERIFY = "/api/v1/audit/verify"


@pytest.fixture
def client(platform_server: Any, served_stores: Any) -> Iterator[httpx.Client]:
    with app_client(platform_server, served_stores) as opened:
        yield opened


def _record(stores: Any, count: int) -> None:
    for n in range(count):
        stores.metadata.audit.record(
            actor="ann", action="alias.set", object_type="model", object_id=f"m{n}"
        )


def _tamper(stores: Any, statement: str) -> None:
    with stores.metadata.db.engine.begin() as conn:
        conn.execute(text(statement))


def test_the_remote_client_verifies_the_servers_chain(
    platform_server: Any, served_stores: Any
) -> None:
    _record(served_stores, 4)
    local = served_stores.metadata.audit.verify()
    with platform_server.serving(served_stores) as url:
        remote = RemoteMetadataStore(url)
        try:
            assert remote.audit.verify() == local and local.ok and local.count == 4
            grown = remote.audit.verify(expect_head=local.head_hash.upper())
            assert grown.ok and grown.expected_head_seq == 4
            [newest] = remote.audit.list_events(limit=1)
            assert (newest.seq, newest.hash) == (4, local.head_hash)
            _tamper(served_stores, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
            report = remote.audit.verify(max_problems=1)
            assert not report.ok and report.problem_count == 1
            assert [(p.seq, p.kind) for p in report.problems] == [(2, "edited")]
            with pytest.raises(InvalidInput):
                remote.audit.verify(expect_head="not a hash")
        finally:
            remote.close()


def test_a_reader_may_verify_and_an_unknown_caller_may_not(
    client: httpx.Client, served_stores: Any
) -> None:
    _record(served_stores, 2)
    answer = client.get(VERIFY, headers=as_role(Role.READER))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["count"], body["head_seq"], body["problem_count"]) == (2, 2, 0)
    error_of(client.get(VERIFY, headers={"Authorization": "Bearer nobody"}), 401)


@pytest.mark.parametrize(
    "params",
    [
        {"max_problems": 0},
        {"max_problems": 10**6},
        {"max_problems": "all"},
        {"expect_head": "zz"},
        {"expect_head": "../../etc/passwd"},
        {"expect_head": "%2e%2e%2f" * 5},
        {"expect_head": "0" * 63 + "\x00"},
        {"expect_head": "0" * 500},
    ],
)
def test_bad_verify_parameters_are_4xx(client: httpx.Client, params: dict[str, Any]) -> None:
    answer = client.get(VERIFY, params=params)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]["message"]


def test_audit_verify_on_the_command_line_through_a_server(
    remote_project: Any, served_stores: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(served_stores, 3)
    head = served_stores.metadata.audit.verify().head_hash
    assert loopline_cli(["audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == f"audit log OK: 3 events, head #3 {head}"
    _tamper(served_stores, "DELETE FROM audit_events WHERE seq = 2")
    assert loopline_cli(["audit", "verify"]) == 5
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "event #2 is missing: deleted"
    assert captured.err.startswith("Error: the audit log failed verification: 1 problem in 2")
