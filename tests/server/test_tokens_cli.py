"""`loopline tokens create / ls / revoke`, in-process on SQLite and PostgreSQL: the token
is printed once and never again; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest

from loopline.cli.app import run as cli


def test_create_list_and_revoke(project, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert (
        cli(["tokens", "create", "--user", "alice", "--role", "deployer", "--expires", "90d"]) == 0
    )
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("llt_") and "\n" not in token
    assert "shown only now" in err and token not in err
    record = project.metadata.tokens.verify(token)
    assert record is not None and (record.user, record.role) == ("alice", "deployer")
    assert record.expires_at is not None

    assert cli(["tokens", "ls"]) == 0
    table = capsys.readouterr().out
    assert record.id in table and "alice" in table and "deployer" in table
    assert token not in table and token.split("_", 2)[2] not in table

    assert cli(["tokens", "ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["id"], t["user"], t["revoked_at"]) for t in listed] == [(record.id, "alice", None)]
    assert token not in json.dumps(listed)

    assert cli(["tokens", "revoke", record.id]) == 0
    assert record.id in capsys.readouterr().out
    assert not project.metadata.tokens.get(record.id).usable()
    assert cli(["tokens", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--user", "alice", "--role", "root"],
        ["create", "--user", "../alice", "--role", "reader"],
        ["create", "--user", "alice\nbob", "--role", "reader"],
        ["create", "--user", "alice", "--role", "reader", "--expires", "forever"],
        ["create", "--user", "alice", "--role", "reader", "--expires", "-5d"],
        ["create", "--user", "alice", "--role", "reader", "--expires", "nan"],
        ["create", "--user", "alice"],
        ["revoke", "../../etc/passwd"],
        ["revoke", "0" * 12],
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    project, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:  # type: ignore[no-untyped-def]
    code = cli(["tokens", *args])
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in out + err and out == ""
    assert project.metadata.tokens.list_tokens() == []
